package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/heartbeat"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// everything is what the edge advertises to every MASQUE agent: it may send
// anything, and the router decides (as it does for WireGuard, whose agents
// allow 0.0.0.0/0 and ::/0).
var everything = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// masqueGrant is the identity an authenticated MASQUE request proved: the
// connector or device id, found in the directory when the session opens.
type masqueGrant struct {
	id     uuid.UUID
	tunnel uuid.UUID // a connector's tunnel; uuid.Nil for a device
}

// masqueHandler plugs the data plane into the MASQUE server: it
// authenticates agents with the same credentials the API takes, and makes
// each session a router.Peer like the WireGuard session of the same agent.
type masqueHandler struct{ d *dataplane }

var _ masque.Handler = masqueHandler{}

// Authenticate accepts a connector's tunnel token with its connector id
// (masque.ConnectorHeader), or a device credential, as the bearer token.
func (h masqueHandler) Authenticate(r *http.Request) (masque.Grant, error) {
	bearer, ok := token.Bearer(r.Header.Get("Authorization"))
	if !ok {
		return masque.Grant{}, fmt.Errorf("%w: no bearer token", masque.ErrUnauthorized)
	}
	if id := r.Header.Get(masque.ConnectorHeader); id != "" {
		return h.connector(r, bearer, id)
	}
	cred, err := token.DecodeSecret(bearer, token.KindDevice)
	if err != nil {
		return masque.Grant{}, fmt.Errorf("%w: %v", masque.ErrUnauthorized, err)
	}
	dev, err := h.d.reg.AuthenticateDevice(r.Context(), cred.ID, cred.Secret)
	if err != nil {
		return masque.Grant{}, authError(err)
	}
	return masque.Grant{
		Addresses: []netip.Prefix{netip.PrefixFrom(dev.IP, dev.IP.BitLen())},
		Routes:    everything,
		Value:     masqueGrant{id: dev.ID},
		Identity:  "device/" + dev.ID.String(),
	}, nil
}

func (h masqueHandler) connector(r *http.Request, bearer, id string) (masque.Grant, error) {
	tok, err := token.DecodeTunnel(bearer)
	if err != nil {
		return masque.Grant{}, fmt.Errorf("%w: %v", masque.ErrUnauthorized, err)
	}
	connID, err := uuid.Parse(id)
	if err != nil {
		return masque.Grant{}, fmt.Errorf("%w: connector id %q is not a UUID", masque.ErrUnauthorized, id)
	}
	if _, err := h.d.reg.AuthenticateTunnel(r.Context(), tok.TunnelID, tok.Secret); err != nil {
		return masque.Grant{}, authError(err)
	}
	if !h.d.enrolled(connID, tok.TunnelID) {
		return masque.Grant{}, fmt.Errorf("%w: connector %s is not enrolled in tunnel %s", masque.ErrForbidden, connID, tok.TunnelID)
	}
	// Bounded per replica, not per tunnel: every replica of a tunnel holds
	// a session with the same token.
	return masque.Grant{Routes: everything, Value: masqueGrant{id: connID, tunnel: tok.TunnelID}, Identity: "connector/" + connID.String()}, nil
}

// authError maps the registry's refusal to the MASQUE status.
func authError(err error) error {
	if errors.Is(err, model.ErrUnauthorized) {
		return fmt.Errorf("%w: %v", masque.ErrUnauthorized, err)
	}
	return fmt.Errorf("%w: %v", masque.ErrForbidden, err)
}

// Open adds the session to the directory, a twin of the agent's WireGuard
// session (same id, name, kind, tunnel, overlay address and virtual
// network), and rebuilds the routing table; nothing else is touched.
func (h masqueHandler) Open(ms *masque.Session, g masque.Grant, _ []netip.Prefix) (masque.Receiver, error) {
	mg := g.Value.(masqueGrant)
	d := h.d
	d.mu.Lock()
	var twin *session
	for _, s := range d.agents[mg.id] {
		if _, ok := s.link.(wgLink); ok && (mg.tunnel == uuid.Nil) == (s.peer.Kind == router.Client) {
			twin = s
		}
	}
	if twin == nil || (mg.tunnel != uuid.Nil && uuid.UUID(twin.peer.Tunnel) != mg.tunnel) {
		d.mu.Unlock()
		return nil, fmt.Errorf("agent %s is not in the edge's directory (yet)", mg.id)
	}
	tp := twin.peer
	p := &router.Peer{Name: tp.Name, Kind: tp.Kind, Tunnel: tp.Tunnel, Overlay: tp.Overlay, User: tp.User, Device: tp.Device}
	p.SetVNet(tp.VNet())
	p.SetIdentity(tp.Identity())
	_, mtu, _ := sessionMTUs(d.mtu)
	// The peer's MTU follows the session's datagram capacity as path MTU
	// discovery grows it (or quic-go starts over), so the router answers
	// ICMP at what the path carries now.
	ms.NotifyMTU(func(inner int) { p.SetMTU(min(mtu, inner)) })
	s := newSession(p, mg.id, masqueLink{ms})
	s.host = twin.host
	ms.SetValue(s)
	// In the directory like a WireGuard session, so heartbeats, the
	// election of a tunnel's active replica and the API see it.
	d.addLocked(s)
	d.checkOneLocked(s, time.Now())
	d.mu.Unlock()
	d.rebuildTable()
	d.log.Info("MASQUE session up", "peer", p.Name, "kind", p.Kind, "id", mg.id, "remote", ms.RemoteAddr())
	return &masqueIn{d: d, from: s, icmp: make([]byte, router.IcmpBufSize), frags: &batch{}}, nil
}

// Closed removes the session from the directory.
func (h masqueHandler) Closed(ms *masque.Session, _ masque.Grant) {
	d := h.d
	s, _ := ms.Value().(*session)
	if s == nil {
		return
	}
	d.mu.Lock()
	if !s.gone.Load() {
		d.removeLocked(s)
		if s.peer.Kind == router.Connector {
			d.electLocked(s.peer.Tunnel, d.tunnels[s.peer.Tunnel], time.Now())
		}
	}
	d.mu.Unlock()
	d.rebuildTable()
	d.log.Info("MASQUE session down", "peer", s.peer.Name, "id", s.id, "remote", ms.RemoteAddr())
}

// masqueIn routes the packets of one MASQUE session; Receive runs on the
// session's one delivering goroutine, so its scratch needs no lock.
type masqueIn struct {
	d     *dataplane
	from  *session
	icmp  []byte
	frags *batch // fragment buffers
}

// Receive routes each packet and hands it to its destination session;
// heartbeats to the edge's own address are answered as over WireGuard.
func (m *masqueIn) Receive(_ *masque.Session, bufs [][]byte) {
	for _, buf := range bufs {
		pkt := buf[masque.Headroom:]
		if probe, ok := m.d.heartbeatProbe(pkt); ok {
			m.from.link.send(heartbeat.AppendReply(m.icmp[:0], pkt, m.d.probe(m.from, probe)), 0, nil)
			continue
		}
		dec := m.d.router.Route(m.from.peer, pkt, m.icmp)
		switch dec.Verdict {
		case router.Forward:
			if dec.To.Missed() {
				m.d.sentMissed.Add(1)
			}
			dec.To.Out.(*session).link.send(buf[:masque.Headroom+dec.Len], masque.Headroom, m.from)
		case router.ForwardFragments:
			// Toward WireGuard the fragments go in one Send; others one
			// by one.
			m.frags.nfrag = 0
			m.d.sendFragments(m.frags, pkt[:dec.Len], dec, m.from)
			m.d.sendGroups(m.frags)
		case router.Reply:
			m.from.link.send(dec.Reply, 0, nil)
		case router.Local:
			if reply := m.d.answerDNS(m.from, pkt[:dec.Len]); reply != nil {
				m.from.link.send(reply, wireguard.Headroom, nil)
			}
		}
	}
}

// startMASQUE serves CONNECT-IP on cfg.MASQUEListen with the API's
// certificate (signed by the CA agents pin; getCert returns the current one,
// so renewals reach the running server) and returns the address agents reach
// it at, and how to stop it (after which no session is left).
func startMASQUE(cfg Config, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), d *dataplane, log *slog.Logger) (string, func(), error) {
	if cfg.MASQUEListen == "" {
		return "", func() {}, nil
	}
	srv, err := masque.NewServer(masque.ServerConfig{
		Listen:         cfg.MASQUEListen,
		GetCertificate: getCert,
		Handler:        masqueHandler{d},
		MaxSessions:    cfg.MASQUEMaxSessions,
		Log:            log,
	})
	if err != nil {
		return "", nil, err
	}
	host, _, err := net.SplitHostPort(cfg.PublicAddr)
	if err != nil {
		srv.Close()
		return "", nil, fmt.Errorf("--public-addr %q is not HOST:PORT", cfg.PublicAddr)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(srv.Port()))), func() { srv.Close() }, nil
}

// enrolled reports whether the directory has connector id in tunnel.
func (d *dataplane) enrolled(id, tunnel uuid.UUID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.agents[id] {
		if s.peer.Kind == router.Connector && uuid.UUID(s.peer.Tunnel) == tunnel {
			return true
		}
	}
	return false
}
