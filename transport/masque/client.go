package masque

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	connectip "github.com/quic-go/connect-ip-go"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/yosida95/uritemplate/v3"
)

// ClientConfig configures Dial.
type ClientConfig struct {
	// Addr is host:port of the edge's MASQUE listener.
	Addr string
	// TLS verifies the edge (agents pin the CA from their token); Dial sets
	// the h3 ALPN on a copy.
	TLS *tls.Config
	// Header carries the agent's credentials (Authorization).
	Header http.Header
	// Routes are advertised to the edge: a connector's site prefixes, a
	// client's overlay address. The agent's side of connect-ip-go accepts
	// packets only for these and its assigned addresses.
	Routes []netip.Prefix
	// ExpectAddress makes Dial wait for the edge's address assignment (a
	// client's overlay address); connectors get none.
	ExpectAddress bool
	// Log gets the session's inner MTU changes and refused packets; nil
	// discards.
	Log *slog.Logger
}

// ClientSession is an agent's session to the edge.
type ClientSession struct {
	*Session
	// Addresses were assigned by the edge (a client's overlay address).
	Addresses []netip.Prefix
	// Routes were advertised by the edge: where the agent may send to.
	Routes []netip.Prefix
}

// RefusedError is a CONNECT-IP request the edge answered with an error status.
type RefusedError struct {
	Status int
}

// Error says what the edge answered.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("edge refused the MASQUE session: %d %s", e.Status, http.StatusText(e.Status))
}

// Dial opens a CONNECT-IP session to the edge, advertises cfg.Routes, and
// waits for the edge's capsules (routes, and addresses if it assigns any).
func Dial(ctx context.Context, cfg ClientConfig) (*ClientSession, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13}
	if cfg.TLS != nil {
		tlsConf = cfg.TLS.Clone()
	}
	tlsConf.NextProtos = []string{http3.NextProtoH3}
	if tlsConf.ServerName == "" {
		tlsConf.ServerName = Authority
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("masque: resolve %s: %w", cfg.Addr, err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, fmt.Errorf("masque: open a UDP socket for %s: %w", cfg.Addr, err)
	}
	tr := newTransport(pc)
	// Closing the session closes the QUIC connection, then the transport
	// and socket it owns.
	release := func(qconn *quic.Conn) {
		if qconn != nil {
			qconn.CloseWithError(0, "")
		}
		tr.Close()
		pc.Close()
	}
	qconn, err := tr.Dial(ctx, raddr, tlsConf, quicConfig())
	if err != nil {
		release(nil)
		return nil, fmt.Errorf("masque: dial %s: %w", cfg.Addr, err)
	}
	cs, err := dialOn(ctx, qconn, cfg, func() { release(qconn) })
	if err != nil {
		release(qconn)
		return nil, fmt.Errorf("masque: %s: %w", cfg.Addr, err)
	}
	return cs, nil
}

// clientRequestStream is the stream id of a client session's CONNECT-IP
// request (see dialOn).
const clientRequestStream quic.StreamID = 0

func dialOn(ctx context.Context, qconn *quic.Conn, cfg ClientConfig, release func()) (*ClientSession, error) {
	req, err := connectip.NewRequest(ctx, uritemplate.MustNew(Template))
	if err != nil {
		return nil, err
	}
	for k, v := range cfg.Header {
		req.Header()[k] = v
	}
	h3 := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qconn)
	conn, rsp, err := connectip.NewClientConn(h3).Dial(req)
	if err != nil {
		if rsp != nil && rsp.StatusCode >= 300 {
			return nil, &RefusedError{Status: rsp.StatusCode}
		}
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sess := newSession(conn, qconn, log.With("component", "masque"))
	// qconn is the session's own and its request the first stream the
	// client opened on it: the first client-initiated bidirectional
	// stream, which QUIC numbers 0 (RFC 9000, 2.1; HTTP/3's own streams
	// are unidirectional). TestDirectDatagramsOnRequestStream holds the
	// edge's side to it.
	sess.prefix = datagramPrefix(clientRequestStream)
	sess.onClose = release
	cs := &ClientSession{Session: sess}
	if err := conn.AdvertiseRoute(toRoutes(cfg.Routes)); err != nil {
		sess.Close()
		return nil, fmt.Errorf("advertise routes: %w", err)
	}
	wait, cancel := context.WithTimeout(ctx, capsuleTimeout)
	defer cancel()
	routes, err := conn.Routes(wait)
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("wait for the edge's routes: %w", err)
	}
	cs.Routes = fromRoutes(routes)
	if cfg.ExpectAddress {
		assigned, err := conn.ReceiveAddressAssignment(wait)
		if err != nil {
			sess.Close()
			return nil, fmt.Errorf("wait for the edge's address assignment: %w", err)
		}
		for _, a := range assigned {
			if !a.Rejected() {
				cs.Addresses = append(cs.Addresses, a.IPPrefix)
			}
		}
	}
	return cs, nil
}

// Advertise replaces the routes advertised to the edge.
func (c *ClientSession) Advertise(routes []netip.Prefix) error {
	return c.conn.AdvertiseRoute(toRoutes(routes))
}
