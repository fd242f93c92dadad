// Package client is the typed Go client of the control API. The CLI uses it
// and nothing else to reach an edge; it imports model, never the server.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// Client calls an edge's API: one edge, or any edge of a cluster (agents
// built from a token that names several, or given more with SetAPIs).
type Client struct {
	apis  *apiList
	token string
	hc    *http.Client
}

// Option changes how New builds a client.
type Option func(*options)

type options struct{ insecureHTTP, noToken bool }

// AllowInsecureHTTP lets New accept an http:// API address whose host is a
// loopback address (or localhost), for a local debugging proxy: the token then
// crosses the loopback interface in the clear. Remote http:// is always refused.
func AllowInsecureHTTP() Option { return func(o *options) { o.insecureHTTP = true } }

// ErrInsecureHTTP is returned by New for an http:// API address it refuses.
var ErrInsecureHTTP = errors.New("refusing to send the API token over plain http://")

// New returns a client for the API at apiURL (https://host:port), trusting the
// CA in caPEM (nil means the system roots) and sending token. It refuses
// http:// addresses, which would send the token in the clear, unless
// AllowInsecureHTTP is given and the host is a loopback address.
func New(apiURL, token string, caPEM []byte, opts ...Option) (*Client, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("API address %q is not an https:// URL", apiURL)
	}
	if u.Scheme == "http" {
		switch {
		case !o.insecureHTTP:
			return nil, fmt.Errorf("%w to %s: use https:// (or --insecure-http, for a loopback address only)", ErrInsecureHTTP, u.Host)
		case !isLoopback(u.Hostname()):
			return nil, fmt.Errorf("%w to %s: use https://; --insecure-http allows only a loopback address (127.0.0.0/8, ::1, localhost)", ErrInsecureHTTP, u.Host)
		}
	}
	if token == "" && !o.noToken {
		return nil, errors.New("no API token: pass --token, set SWITCHYARD_TOKEN, run switchyard login, or use the admin config the edge wrote")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the CA file holds no PEM certificate")
		}
		tlsConf.RootCAs = pool
	}
	return newClient(u, token, tlsConf), nil
}

// isLoopback reports whether host is a loopback IP address or localhost.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func newClient(u *url.URL, token string, tlsConf *tls.Config) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.DialContext = dialAPI // a conservative MSS: the handshake crosses small, silent paths
	// No client-wide timeout: long polls wait up to a minute; every call has a context.
	hc := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		// The API never redirects; following one elsewhere would carry the token along.
		if orig := via[0].URL; req.URL.Scheme != orig.Scheme || req.URL.Host != orig.Host {
			return fmt.Errorf("the edge API redirected to %s://%s; refusing to follow", req.URL.Scheme, req.URL.Host)
		}
		return nil
	}}
	return &Client{apis: newAPIList(u), token: token, hc: hc}
}

// do sends a request and decodes a JSON response into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	_, err := c.doHeader(ctx, method, path, q, nil, in, out)
	return err
}

// doHeader is do with request headers, returning the response's headers; a
// 304 Not Modified response returns the headers and leaves out untouched.
// With several edges to choose from, a request that an edge could not take
// (unreachable, or 503: its store is down, nothing changed) goes to the next.
func (c *Client) doHeader(ctx context.Context, method, path string, q url.Values, hdr http.Header, in, out any) (http.Header, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
	}
	for tries := c.apis.len(); ; tries-- {
		base, i := c.apis.current()
		h, err, next := c.try(ctx, base, method, path, q, hdr, body, out)
		if err == nil || !next || tries <= 1 || ctx.Err() != nil {
			return h, err
		}
		c.apis.failed(i)
	}
}

// try sends one request to the API at base; next says whether another edge
// may take it: the request never reached this one, is safe to repeat, or was
// refused with nothing changed.
func (c *Client) try(ctx context.Context, base *url.URL, method, path string, q url.Values, hdr http.Header, body []byte, out any) (_ http.Header, _ error, next bool) {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err), false
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.token != "" { // a sign-in client has none
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var oe *net.OpError
		unsent := errors.As(err, &oe) && oe.Op == "dial"
		return nil, fmt.Errorf("cannot reach the edge API at %s: %w", base.Host, err), unsent || method == http.MethodGet
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err), method == http.MethodGet
	}
	if resp.StatusCode == http.StatusNotModified {
		return resp.Header, nil, false
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, buf), resp.StatusCode == http.StatusServiceUnavailable
	}
	if out != nil {
		if err := json.Unmarshal(buf, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode response: %w", method, path, err), false
		}
	}
	return resp.Header, nil, false
}

// decodeError turns an error response into a *model.Error.
func decodeError(status int, buf []byte) error {
	var body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(buf, &body) != nil || body.Message == "" {
		body.Message = fmt.Sprintf("HTTP %d: %s", status, strings.TrimSpace(string(buf)))
	}
	kind := map[int]model.Kind{
		http.StatusBadRequest:         model.KindInvalid,
		http.StatusNotFound:           model.KindNotFound,
		http.StatusConflict:           model.KindConflict,
		http.StatusForbidden:          model.KindForbidden,
		http.StatusUnauthorized:       model.KindUnauthorized,
		http.StatusServiceUnavailable: model.KindUnavailable,
	}[status]
	return &model.Error{Kind: kind, Code: body.Code, Message: body.Message}
}

func seg(s string) string { return url.PathEscape(s) }

// ListVNets lists virtual networks.
func (c *Client) ListVNets(ctx context.Context, f model.VNetFilter) ([]model.VNet, error) {
	q := url.Values{}
	if f.ID != nil {
		q.Set("id", f.ID.String())
	}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	if f.IsDefault != nil {
		q.Set("is_default", strconv.FormatBool(*f.IsDefault))
	}
	if f.ShowDeleted {
		q.Set("show_deleted", "true")
	}
	var out []model.VNet
	return out, c.do(ctx, http.MethodGet, "/v1/vnets", q, nil, &out)
}

// CreateVNet creates a virtual network.
func (c *Client) CreateVNet(ctx context.Context, req model.NewVNet) (model.VNet, error) {
	var out model.VNet
	return out, c.do(ctx, http.MethodPost, "/v1/vnets", nil, req, &out)
}

// UpdateVNet changes the virtual network named by ref (name or id).
func (c *Client) UpdateVNet(ctx context.Context, ref string, p model.VNetPatch) (model.VNet, error) {
	var out model.VNet
	return out, c.do(ctx, http.MethodPatch, "/v1/vnets/"+seg(ref), nil, p, &out)
}

// DeleteVNet deletes the virtual network named by ref and returns how many routes went with it.
func (c *Client) DeleteVNet(ctx context.Context, ref string, force bool) (int, error) {
	var out struct {
		DeletedRoutes int `json:"deleted_routes"`
	}
	err := c.do(ctx, http.MethodDelete, "/v1/vnets/"+seg(ref), forceQuery(force), nil, &out)
	return out.DeletedRoutes, err
}

// CreateTunnel creates a tunnel and returns it with its token.
func (c *Client) CreateTunnel(ctx context.Context, name string) (model.CreatedTunnel, error) {
	var out model.CreatedTunnel
	return out, c.do(ctx, http.MethodPost, "/v1/tunnels", nil, model.NewTunnel{Name: name}, &out)
}

// ListTunnels lists tunnels.
func (c *Client) ListTunnels(ctx context.Context, f model.TunnelFilter) ([]model.Tunnel, error) {
	q := url.Values{}
	if f.ID != nil {
		q.Set("id", f.ID.String())
	}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	if f.ShowDeleted {
		q.Set("show_deleted", "true")
	}
	var out []model.Tunnel
	return out, c.do(ctx, http.MethodGet, "/v1/tunnels", q, nil, &out)
}

// GetTunnel returns the tunnel named by ref.
func (c *Client) GetTunnel(ctx context.Context, ref string) (model.Tunnel, error) {
	var out model.Tunnel
	return out, c.do(ctx, http.MethodGet, "/v1/tunnels/"+seg(ref), nil, nil, &out)
}

// DeleteTunnel deletes the tunnel named by ref and returns how many routes went with it.
func (c *Client) DeleteTunnel(ctx context.Context, ref string, force bool) (int, error) {
	var out struct {
		DeletedRoutes int `json:"deleted_routes"`
	}
	err := c.do(ctx, http.MethodDelete, "/v1/tunnels/"+seg(ref), forceQuery(force), nil, &out)
	return out.DeletedRoutes, err
}

// TunnelToken returns the token of the tunnel named by ref.
func (c *Client) TunnelToken(ctx context.Context, ref string) (model.CreatedTunnel, error) {
	var out model.CreatedTunnel
	return out, c.do(ctx, http.MethodGet, "/v1/tunnels/"+seg(ref)+"/token", nil, nil, &out)
}

// Failover makes a replica of a tunnel active (a connector id or hostname;
// empty means the best standby) and returns it.
func (c *Client) Failover(ctx context.Context, tunnel, replica string) (model.Connection, error) {
	var out model.Connection
	return out, c.do(ctx, http.MethodPost, "/v1/tunnels/"+seg(tunnel)+"/failover", nil, model.Failover{Replica: replica}, &out)
}

// AddRoute routes a network to a tunnel.
func (c *Client) AddRoute(ctx context.Context, req model.NewRoute) (model.Route, error) {
	var out model.Route
	return out, c.do(ctx, http.MethodPost, "/v1/routes", nil, req, &out)
}

// ListRoutes lists routes.
func (c *Client) ListRoutes(ctx context.Context, f model.RouteFilter) ([]model.Route, error) {
	q := url.Values{}
	for k, v := range map[string]string{"vnet": f.VNet, "tunnel": f.Tunnel} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.SubsetOf != nil {
		q.Set("network_subset_of", f.SubsetOf.String())
	}
	if f.SupersetOf != nil {
		q.Set("network_superset_of", f.SupersetOf.String())
	}
	if f.Comment != nil {
		q.Set("comment", *f.Comment)
	}
	if f.ShowDeleted {
		q.Set("show_deleted", "true")
	}
	var out []model.Route
	return out, c.do(ctx, http.MethodGet, "/v1/routes", q, nil, &out)
}

// GetRoute returns the longest-prefix match for ip in vnet ("" for the default).
func (c *Client) GetRoute(ctx context.Context, vnet string, ip netip.Addr) (model.Route, error) {
	var out model.Route
	return out, c.do(ctx, http.MethodGet, "/v1/routes/ip/"+ip.String(), vnetQuery(vnet), nil, &out)
}

// DeleteRoute deletes a route by id, or by CIDR in vnet ("" for the default).
func (c *Client) DeleteRoute(ctx context.Context, vnet, ref string) (model.Route, error) {
	var out model.Route
	if _, err := netip.ParsePrefix(ref); err != nil {
		ref = seg(ref) // an id, or garbage that the server will refuse
	}
	return out, c.do(ctx, http.MethodDelete, "/v1/routes/"+ref, vnetQuery(vnet), nil, &out)
}

// Overlaps lists the networks routed in more than one virtual network.
func (c *Client) Overlaps(ctx context.Context) ([]model.Overlap, error) {
	var out []model.Overlap
	return out, c.do(ctx, http.MethodGet, "/v1/routes/overlaps", nil, nil, &out)
}

func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

func vnetQuery(vnet string) url.Values {
	if vnet == "" {
		return nil
	}
	return url.Values{"vnet": {vnet}}
}

// Stats returns the edge's data plane counters as JSON.
func (c *Client) Stats(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, "/v1/stats", nil, nil, &out)
}

// Edges lists the edges of the cluster.
func (c *Client) Edges(ctx context.Context) ([]model.Edge, error) {
	var out []model.Edge
	return out, c.do(ctx, http.MethodGet, "/v1/edges", nil, nil, &out)
}

// ObjectNames maps the ids of virtual networks and tunnels, which the edge
// stores policy rules by, to their names (see model.Expr.WithNames); on an
// error it is partial or empty, and ids show.
func (c *Client) ObjectNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	if vnets, err := c.ListVNets(ctx, model.VNetFilter{}); err == nil {
		for _, v := range vnets {
			names[v.ID.String()] = v.Name
		}
	}
	if tunnels, err := c.ListTunnels(ctx, model.TunnelFilter{}); err == nil {
		for _, t := range tunnels {
			names[t.ID.String()] = t.Name
		}
	}
	return names
}
