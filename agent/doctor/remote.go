package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// Clock skew beyond these warns, then fails: certificates, tokens and
// sign-in sessions are checked against the clock.
const (
	SkewWarn = 5 * time.Second
	SkewFail = time.Minute
)

// Daemon is the running agent's side of the checks: its local control socket.
type Daemon interface {
	// Status returns the agent's status, or an error matching
	// localapi.ErrNotRunning when none runs.
	Status(ctx context.Context) (localapi.Status, error)
}

// daemon checks that an agent runs (st, err: its answer on the control
// socket) and that the edge answers its heartbeats, then the TUN's MTU
// against the path MTU its session found (tunMTU 0: unknown).
func daemon(st localapi.Status, err error, unit, tunIf string, tunMTU int) []Check {
	switch {
	case errors.Is(err, localapi.ErrNotRunning):
		return []Check{{Name: "daemon", Status: Warn, Detail: err.Error(), Fix: "systemctl start " + unit}}
	case err != nil:
		return []Check{{Name: "daemon", Status: Fail, Detail: fmt.Sprintf("ask the running agent: %v", err), Fix: "systemctl restart " + unit}}
	case !st.Healthy:
		d := fmt.Sprintf("%s (pid %d) runs but the edge has not answered its heartbeats", st.Role, st.PID)
		if !st.LastReply.IsZero() {
			d += " since " + st.LastReply.UTC().Format(time.RFC3339)
		}
		return []Check{{Name: "daemon", Status: Fail, Detail: d, Fix: "journalctl -u " + unit + " -n 50"}}
	}
	out := []Check{{Name: "daemon", Status: OK, Detail: fmt.Sprintf("%s (pid %d) healthy, active %t, rtt %s", st.Role, st.PID, st.Active, st.RTT)}}
	return append(out, pathMTU(st.PathMTU, tunIf, tunMTU))
}

// pathMTU compares the TUN's MTU with the smaller direction of the path MTU
// that discovery settled on: a larger TUN MTU means packets the path drops
// (or fragments), seen as stalls of large transfers.
func pathMTU(p *localapi.PathMTU, tunIf string, tunMTU int) Check {
	c := Check{Name: "path-mtu", Status: OK}
	switch {
	case p == nil:
		c.Detail = "not probed (MASQUE)"
		return c
	case p.State != localapi.PathMTUDone || tunMTU == 0:
		c.Detail = "path MTU " + p.String()
		return c
	}
	path := min(p.AgentToEdge, p.EdgeToAgent)
	c.Detail = fmt.Sprintf("%s MTU %d, path MTU %s", tunIf, tunMTU, p)
	if tunMTU > path {
		c.Status = Warn
		c.Detail += fmt.Sprintf(": packets over %d bytes do not cross", path)
		c.Fix = fmt.Sprintf("ip link set dev %s mtu %d", tunIf, path)
	}
	return c
}

// edgeTarget is the API address and CA pin a token names, and the fix for
// a token the edge refuses.
type edgeTarget struct{ api, pin, refusedFix string }

// parseToken checks that raw is a tunnel token or a device credential and
// returns its edge.
func parseToken(raw string) (edgeTarget, Check) {
	c := Check{Name: "token"}
	if t, err := token.DecodeTunnel(raw); err == nil {
		c.Status, c.Detail = OK, "tunnel token of tunnel "+t.TunnelID.String()
		return edgeTarget{t.API, t.CAPin, "switchyard tunnel token " + t.TunnelID.String()}, c
	}
	if t, err := token.DecodeSecret(raw, token.KindDevice); err == nil {
		c.Status, c.Detail = OK, "device credential of device "+t.ID.String()
		return edgeTarget{t.API, t.CAPin, "switchyard device unrevoke " + t.ID.String()}, c
	}
	_, err := token.DecodeTunnel(raw)
	c.Status, c.Detail = Fail, fmt.Sprintf("decode token: %v", err)
	c.Fix = "switchyard tunnel token TUNNEL"
	return edgeTarget{}, c
}

// edge checks that the edge's API answers over the pinned CA, and the clock
// against its Date header. hc nil means a client with the pinned TLS.
func edge(ctx context.Context, e edgeTarget, hc *http.Client, now func() time.Time) []Check {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: client.PinnedTLS(e.pin)}}
	}
	u, err := url.Parse(e.api)
	if err != nil {
		return []Check{{Name: "edge-api", Status: Fail, Detail: fmt.Sprintf("parse API address %q: %v", e.api, err)}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath("/v1/").String(), nil)
	if err != nil {
		return []Check{{Name: "edge-api", Status: Fail, Detail: err.Error()}}
	}
	resp, err := hc.Do(req)
	if err != nil {
		c := Check{Name: "edge-api", Status: Fail, Detail: fmt.Sprintf("reach %s: %v", u.Host, err)}
		if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "dial" {
			// Nothing answered: a firewall on the way is the usual cause.
			c.Fix = "nft add rule inet filter output tcp dport " + port(u) + " accept"
		}
		return []Check{c}
	}
	resp.Body.Close()
	out := []Check{{Name: "edge-api", Status: OK, Detail: fmt.Sprintf("%s answers over the pinned CA (%s)", u.Host, resp.Status)}}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return append(out, Check{Name: "clock", Status: Warn, Detail: "the edge sent no Date header"})
	}
	skew := now().Sub(date).Round(time.Second)
	c := Check{Name: "clock", Status: OK, Detail: fmt.Sprintf("%s off the edge's clock", skew)}
	if abs(skew) > SkewWarn {
		c.Status, c.Fix = Warn, "timedatectl set-ntp true"
	}
	if abs(skew) > SkewFail {
		c.Status = Fail
	}
	return append(out, c)
}

// credential asks the edge whether it accepts the token (a check that
// changes nothing) and whether the agent's key pub is enrolled under it;
// decoded is the token check parseToken made, e its edge.
func credential(ctx context.Context, raw string, e edgeTarget, decoded Check, pub string) (model.CredentialCheck, Check) {
	c := decoded
	api, err := client.NewAgent(raw)
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("%s: %v", c.Detail, err)
		return model.CredentialCheck{}, c
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cc, err := api.CheckCredential(ctx, pub)
	var me *model.Error
	switch {
	case errors.As(err, &me) && me.Code == model.CodeSessionExpired:
		c.Status, c.Detail, c.Fix = Fail, c.Detail+": "+me.Message, "switchyard client up --login"
	case errors.As(err, &me) && me.Kind == model.KindUnauthorized:
		c.Status, c.Detail, c.Fix = Fail, c.Detail+": the edge refuses it ("+me.Message+")", e.refusedFix
	case err != nil:
		c.Status, c.Detail = Warn, fmt.Sprintf("%s: the edge could not check it: %v", c.Detail, err)
	default:
		c.Detail = fmt.Sprintf("%s %q (%s): the edge accepts it", cc.Kind, cc.Name, cc.ID)
	}
	return cc, c
}

// handshakeWait bounds the handshake with each edge.
const handshakeWait = 5 * time.Second

// wireguardPort checks that each edge's WireGuard port answers. A healthy
// running agent shows it by its heartbeats, and is left alone: a handshake
// of ours would move its session's endpoint at the edge. Otherwise doctor
// completes a handshake with the agent's own key, which the edge answers
// only when the key is enrolled (cc.KeyEnrolled).
func wireguardPort(ctx context.Context, cc model.CredentialCheck, priv wireguard.PrivateKey, st *localapi.Status) []Check {
	c := Check{Name: "wireguard", Status: OK}
	switch {
	case st != nil && st.Healthy && st.PathMTU == nil:
		c.Detail = "not in use: the running agent's tunnel is MASQUE"
		return []Check{c}
	case st != nil && st.Healthy:
		c.Detail = "the running agent's WireGuard session carries its heartbeats (rtt " + st.RTT + ")"
		return []Check{c}
	case priv.IsZero():
		c.Status, c.Detail = Warn, "skipped: this host has no WireGuard key yet (the agent has not started)"
		return []Check{c}
	case cc.KeyEnrolled == nil || !*cc.KeyEnrolled:
		c.Status, c.Detail = Warn, "skipped: this host's WireGuard key is not enrolled under the token (the agent enrolls it when it starts)"
		return []Check{c}
	}
	edges := cc.Edge.Edges
	if len(edges) == 0 {
		edges = []model.ClusterEdge{{Endpoint: cc.Edge.Endpoint, PublicKey: cc.Edge.PublicKey}}
	}
	var out []Check
	for _, e := range edges {
		out = append(out, handshake(ctx, priv, e))
	}
	return out
}

// handshake completes a WireGuard handshake with edge e.
func handshake(ctx context.Context, priv wireguard.PrivateKey, e model.ClusterEdge) Check {
	c := Check{Name: "wireguard"}
	name := e.Endpoint
	if e.Name != "" {
		name = e.Name + " (" + e.Endpoint + ")"
	}
	pub, err := wireguard.ParsePublicKey(e.PublicKey)
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("edge %s: %v", name, err)
		return c
	}
	addr, err := wireguard.ResolveEndpoint(e.Endpoint)
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("edge %s: resolve its endpoint: %v", name, err)
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeWait)
	defer cancel()
	rtt, err := wireguard.HandshakeOnce(ctx, priv, pub, addr)
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("edge %s: %v: a firewall drops UDP to port %d, or the edge does not listen there", name, err, addr.Port())
		c.Fix = fmt.Sprintf("nft add rule inet filter output udp dport %d accept", addr.Port())
		return c
	}
	c.Status, c.Detail = OK, fmt.Sprintf("edge %s completed a handshake in %s", name, rtt.Round(100*time.Microsecond))
	return c
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// port is u's port, by default 443.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return "443"
}
