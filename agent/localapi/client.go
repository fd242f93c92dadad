package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/agent/proxy"
	"github.com/switchyard/switchyard/control/model"
)

// DefaultTimeout bounds one request of a Client: an agent that does not
// answer within it (stopped, hung) is reported as such.
const DefaultTimeout = 5 * time.Second

// ErrNotRunning matches (errors.Is) the error of a Client when no agent
// listens on the socket.
var ErrNotRunning = errors.New("no agent running")

// notRunning says which agent does not run, and matches ErrNotRunning.
type notRunning struct{ role, stateDir, path string }

func (e notRunning) Error() string {
	return fmt.Sprintf("no %s running with state dir %s (nothing listens on %s)", e.role, e.stateDir, e.path)
}

func (e notRunning) Is(target error) bool { return target == ErrNotRunning }

// Client talks to the agent running with one state directory.
type Client struct {
	role     string // "connector" or "client", for messages
	stateDir string
	path     string
	hc       *http.Client
}

// NewClient returns a client of the role's agent (connector or client) that
// runs with stateDir; it does not connect yet.
func NewClient(role, stateDir string) *Client {
	path := filepath.Join(stateDir, SocketFile)
	return &Client{role: role, stateDir: stateDir, path: path, hc: &http.Client{
		Timeout: DefaultTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		},
	}}
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.do(ctx, http.MethodGet, "/status", nil, &st)
}

// SetPreferred tells a connector whether its host holds the site's gateway
// address, and returns its status after the change.
func (c *Client) SetPreferred(ctx context.Context, preferred bool) (Status, error) {
	var st Status
	return st, c.do(ctx, http.MethodPut, "/preferred", preferredBody{Preferred: preferred}, &st)
}

// VNets lists the virtual networks a client's device may select.
func (c *Client) VNets(ctx context.Context) ([]model.VNet, error) {
	var v []model.VNet
	return v, c.do(ctx, http.MethodGet, "/vnets", nil, &v)
}

// SelectVNet switches a client's device into the virtual network vnet (a
// name or an ID).
func (c *Client) SelectVNet(ctx context.Context, vnet string) (model.VNet, error) {
	var v model.VNet
	return v, c.do(ctx, http.MethodPut, "/vnet", model.SelectVNet{VNet: vnet}, &v)
}

// ReportPosture makes a client collect its device's posture and report it to
// the edge at once; it returns the posture as the edge stored it.
func (c *Client) ReportPosture(ctx context.Context) (model.Posture, error) {
	var p model.Posture
	return p, c.do(ctx, http.MethodPost, "/posture", nil, &p)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s on %s: read answer: %w", method, path, c.path, err)
	}
	if resp.StatusCode >= 300 {
		var e errorBody
		if json.Unmarshal(buf, &e) != nil || e.Message == "" {
			return fmt.Errorf("%s %s on %s: HTTP %d: %s", method, path, c.path, resp.StatusCode, strings.TrimSpace(string(buf)))
		}
		return &model.Error{Kind: e.Kind, Code: e.Code, Message: e.Message}
	}
	if err := json.Unmarshal(buf, out); err != nil {
		return fmt.Errorf("%s %s on %s: decode answer: %w", method, path, c.path, err)
	}
	return nil
}

// dialError explains a failed request: no agent, or one that does not answer.
func (c *Client) dialError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return notRunning{c.role, c.stateDir, c.path}
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("the %s running with state dir %s did not answer on %s within %v", c.role, c.stateDir, c.path, DefaultTimeout)
	}
	return fmt.Errorf("reach the %s running with state dir %s on %s: %w", c.role, c.stateDir, c.path, err)
}

// dialTimeout bounds a Dial until the agent answers: its own dial through
// the tunnel included.
const dialTimeout = 20 * time.Second

// Dial opens a TCP connection to dst through the tunnel of the userspace
// client running with the state directory (POST /dial). The connection
// half-closes (CloseWrite) like a TCP one.
func (c *Client) Dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	uc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, c.dialError(err)
	}
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	uc.SetDeadline(time.Now().Add(dialTimeout))
	req, err := http.NewRequest(http.MethodPost, "http://agent/dial?"+url.Values{"addr": {dst.String()}}.Encode(), nil)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", DialProtocol)
	br := bufio.NewReader(uc)
	resp, err := func() (*http.Response, error) {
		if err := req.Write(uc); err != nil {
			return nil, err
		}
		return http.ReadResponse(br, req)
	}()
	if err != nil {
		uc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s through the %s running with state dir %s: %w", dst, c.role, c.stateDir, ctx.Err())
		}
		return nil, fmt.Errorf("dial %s through the %s running with state dir %s: %w", dst, c.role, c.stateDir, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer uc.Close()
		buf, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e errorBody
		if json.Unmarshal(buf, &e) != nil || e.Message == "" {
			return nil, fmt.Errorf("dial %s on %s: HTTP %d: %s", dst, c.path, resp.StatusCode, strings.TrimSpace(string(buf)))
		}
		return nil, &model.Error{Kind: e.Kind, Code: e.Code, Message: e.Message}
	}
	if !stop() { // ctx ended as the answer came
		uc.Close()
		return nil, fmt.Errorf("dial %s: %w", dst, ctx.Err())
	}
	uc.SetDeadline(time.Time{})
	return proxy.Buffered(uc, br), nil
}
