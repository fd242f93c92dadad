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

// Open adds a router peer for the session, a twin of the agent's WireGuard
// peer (same name, kind, tunnel, overlay address and virtual network) whose
// Out is the MASQUE session.
func (h masqueHandler) Open(s *masque.Session, g masque.Grant, _ []netip.Prefix) (masque.Receiver, error) {
	mg := g.Value.(masqueGrant)
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	var twin *router.Peer
	for _, p := range d.peers {
		if d.ids[p] == mg.id && (mg.tunnel == uuid.Nil) == (p.Kind == router.Client) {
			twin = p
		}
	}
	if twin == nil || (mg.tunnel != uuid.Nil && uuid.UUID(twin.Tunnel) != mg.tunnel) {
		return nil, fmt.Errorf("agent %s is not in the edge's directory (yet)", mg.id)
	}
	p := &router.Peer{Name: twin.Name, Kind: twin.Kind, Tunnel: twin.Tunnel, Overlay: twin.Overlay, User: twin.User, Device: twin.Device, Out: s}
	p.SetVNet(twin.VNet())
	s.SetValue(p)
	if d.masque == nil {
		d.masque = map[uuid.UUID][]*router.Peer{}
	}
	d.masque[mg.id] = append(d.masque[mg.id], p)
	// In the directory like a WireGuard peer, so heartbeats, the election
	// of a tunnel's active replica and the API see it.
	d.ids[p] = mg.id
	d.hosts[p] = d.hosts[twin]
	d.applyLocked(d.last) // cannot close sessions: the agent is in the directory
	d.checkLocked(time.Now())
	d.log.Info("MASQUE session up", "peer", p.Name, "kind", p.Kind, "id", mg.id, "remote", s.RemoteAddr())
	return &masqueIn{d: d, from: p, icmp: make([]byte, router.IcmpBufSize)}, nil
}

// Closed removes the session's peer.
func (h masqueHandler) Closed(s *masque.Session, g masque.Grant) {
	mg := g.Value.(masqueGrant)
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	p, _ := s.Value().(*router.Peer)
	if p == nil {
		return
	}
	p.SetUp(false)
	p.SetActive(false)
	d.forget(p)
	peers := d.masque[mg.id]
	for i, q := range peers {
		if q == p {
			peers = append(peers[:i], peers[i+1:]...)
			break
		}
	}
	if len(peers) == 0 {
		delete(d.masque, mg.id)
	} else {
		d.masque[mg.id] = peers
	}
	d.applyLocked(d.last) // the agent's other sessions stay: only a directory change closes them
	d.checkLocked(time.Now())
	d.log.Info("MASQUE session down", "peer", p.Name, "id", mg.id, "remote", s.RemoteAddr())
}

// masqueIn routes the packets of one MASQUE session; Receive runs on the
// session's one delivering goroutine, so its scratch needs no lock.
type masqueIn struct {
	d    *dataplane
	from *router.Peer
	icmp []byte
}

// Receive routes each packet and hands it to its destination session;
// heartbeats to the edge's own address are answered as over WireGuard.
func (m *masqueIn) Receive(_ *masque.Session, bufs [][]byte) {
	for _, buf := range bufs {
		pkt := buf[masque.Headroom:]
		if probe, ok := m.d.heartbeatProbe(pkt); ok {
			m.d.sendTo(m.from, heartbeat.AppendReply(m.icmp[:0], pkt, m.d.probe(m.from, probe)), 0, nil)
			continue
		}
		dec := m.d.router.Route(m.from, pkt, m.icmp)
		switch dec.Verdict {
		case router.Forward:
			if dec.To.Missed() {
				m.d.sentMissed.Add(1)
			}
			m.d.sendTo(dec.To, buf[:masque.Headroom+dec.Len], masque.Headroom, m.from)
		case router.Reply:
			m.d.sendTo(m.from, dec.Reply, 0, nil)
		}
	}
}

// sendTo hands buf[off:], a packet from peer from (nil for the edge's own),
// to the session of peer to, whichever transport it uses. For WireGuard, off
// must leave wireguard.Headroom in front and cap(buf) wireguard.Tailroom
// after it (or sendTo copies). Drops are counted by the transports.
func (d *dataplane) sendTo(to *router.Peer, buf []byte, off int, from *router.Peer) {
	switch out := to.Out.(type) {
	case *wireguard.Session:
		if off < wireguard.Headroom || cap(buf)-len(buf) < wireguard.Tailroom {
			b := make([]byte, wireguard.Headroom+len(buf)-off, wireguard.Headroom+len(buf)-off+wireguard.Tailroom)
			copy(b[wireguard.Headroom:], buf[off:])
			buf, off = b, wireguard.Headroom
		}
		d.ep.Send(out, [][]byte{buf}, off)
	case *masque.Session:
		// A packet too large for one datagram (from a WireGuard peer, whose
		// MTU is larger) comes back as an ICMP error for its sender, so that
		// path MTU discovery works across the two transports.
		icmp, _ := out.WritePacket(buf[off:])
		if icmp != nil && from != nil && from != to {
			d.sendTo(from, icmp, 0, nil)
		}
	}
}

// masqueConnections adds the live MASQUE sessions of connectors to out;
// d.mu is held.
func (d *dataplane) masqueConnections(out map[uuid.UUID][]model.Connection) {
	for _, peers := range d.masque {
		for _, p := range peers {
			if p.Kind == router.Connector && p.Up() {
				tun := uuid.UUID(p.Tunnel)
				out[tun] = append(out[tun], d.connection(p))
			}
		}
	}
}

// masqueLastSeen marks devices with a live MASQUE session as seen now; d.mu is held.
func (d *dataplane) masqueLastSeen(out map[uuid.UUID]time.Time) {
	for id, peers := range d.masque {
		for _, p := range peers {
			if p.Kind == router.Client && p.Up() {
				out[id] = time.Now().UTC()
			}
		}
	}
}

// goneMASQUE takes the MASQUE peers of agents no longer in the directory
// (revoked devices, deleted connectors) out and returns their sessions;
// d.mu is held and d.ids is current.
func (d *dataplane) goneMASQUE() []*masque.Session {
	live := make(map[uuid.UUID]bool, len(d.peers))
	for _, p := range d.peers {
		live[d.ids[p]] = true
	}
	var gone []*masque.Session
	for id, peers := range d.masque {
		if live[id] {
			continue
		}
		for _, p := range peers {
			d.forget(p)
			p.SetUp(false)
			if s, ok := p.Out.(*masque.Session); ok {
				gone = append(gone, s)
			}
		}
		delete(d.masque, id)
	}
	return gone
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

// alive reports whether p counts as up at now. A MASQUE session is up while
// it lives (QUIC ends a silent one after its idle timeout) and, once its
// agent sends heartbeats, while they arrive.
func (d *dataplane) alive(p *router.Peer, l *liveness, now time.Time) bool {
	if _, ok := p.Out.(*masque.Session); ok {
		return l.detect == 0 || now.Sub(l.lastProbe) < l.detect
	}
	s, _ := p.Out.(*wireguard.Session)
	return l.alive(s, now)
}

// forget removes a MASQUE peer from the directory's side tables; d.mu is held.
func (d *dataplane) forget(p *router.Peer) {
	delete(d.ids, p)
	delete(d.hosts, p)
	delete(d.live, p)
	if d.override[p.Tunnel] == p {
		delete(d.override, p.Tunnel)
	}
}

// enrolled reports whether the directory has connector id in tunnel.
func (d *dataplane) enrolled(id, tunnel uuid.UUID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.peers {
		if d.ids[p] == id && p.Kind == router.Connector && uuid.UUID(p.Tunnel) == tunnel {
			return true
		}
	}
	return false
}
