package edge

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
	"github.com/switchyard/switchyard/internal/packettest"
	"github.com/switchyard/switchyard/internal/testpki"
	"github.com/switchyard/switchyard/router"
	"github.com/switchyard/switchyard/transport/masque"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// serveMASQUE starts the edge's MASQUE server for l and returns its address
// and a TLS configuration that trusts it.
func (l *edgeLab) serveMASQUE(t *testing.T) (string, *tls.Config) {
	t.Helper()
	cert, tlsConf := testpki.Server(t)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	addr, stop, err := startMASQUE(Config{MASQUEListen: "127.0.0.1:0", PublicAddr: "127.0.0.1:51820"}, getCert, l.dp, l.dp.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr, tlsConf
}

func tunnelToken(id model.Tunnel, secret []byte) string {
	return token.Tunnel{TunnelID: id.ID, Secret: secret, API: "https://127.0.0.1:7443", CAPin: "sha256/test"}.Encode()
}

// A MASQUE connector and a WireGuard connector exchange packets through the
// router with their true addresses; requests without a valid credential get
// 401 or 403 and no session.
func TestMASQUESessionsJoinTheRouter(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	addr, tlsConf := l.serveMASQUE(t)

	// Site A connects over MASQUE: its connector enrolls (a key, as any
	// agent has) and proves itself with the tunnel token.
	tunA, secretA := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	key, _ := wireguard.GeneratePrivateKey()
	pub := key.PublicKey()
	connA, err := l.reg.EnrollConnector(ctx, tunA.ID, secretA, model.ConnectorEnrollment{PublicKey: base64.StdEncoding.EncodeToString(pub[:])})
	if err != nil {
		t.Fatal(err)
	}
	// Site C connects over WireGuard.
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	c.send(t, ping("100.96.0.1", "10.3.0.1"))
	l.waitUp(t, 1)
	waitEnrolled := func(id, tun [16]byte) {
		deadline := time.Now().Add(5 * time.Second)
		for !l.dp.enrolled(id, tun) {
			if time.Now().After(deadline) {
				t.Fatal("the data plane never saw the enrolled connector")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitEnrolled(connA.ID, tunA.ID)

	_, otherSecret, err := l.reg.CreateTunnel(ctx, model.NewTunnel{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	good := tunnelToken(tunA, secretA)
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"no credential", nil, http.StatusUnauthorized},
		{"garbage", http.Header{"Authorization": {"Bearer x"}}, http.StatusUnauthorized},
		{"wrong secret", http.Header{"Authorization": {"Bearer " + tunnelToken(tunA, otherSecret)}, masque.ConnectorHeader: {connA.ID.String()}}, http.StatusUnauthorized},
		{"connector id not a UUID", http.Header{"Authorization": {"Bearer " + good}, masque.ConnectorHeader: {c.key}}, http.StatusUnauthorized},
		{"not a connector of this tunnel", http.Header{"Authorization": {"Bearer " + good}, masque.ConnectorHeader: {tunA.ID.String()}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := masque.Dial(dctx, masque.ClientConfig{Addr: addr, TLS: tlsConf, Header: tc.header})
			var re *masque.RefusedError
			if !errors.As(err, &re) || re.Status != tc.status {
				t.Fatalf("Dial = %v, want a refusal with %d", err, tc.status)
			}
		})
	}
	l.dp.mu.Lock()
	n, _ := l.dp.masqueSessionsLocked()
	l.dp.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d MASQUE peers after refused requests, want none", n)
	}

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a, err := masque.Dial(dctx, masque.ClientConfig{
		Addr: addr, TLS: tlsConf, Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		// The scheme is case-insensitive (RFC 7235).
		Header: http.Header{"Authorization": {"bearer " + good}, masque.ConnectorHeader: {connA.ID.String()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make(chan []byte, 8)
	go a.Serve(chanReceiver(got))

	// A (MASQUE) to C (WireGuard), with the edge's TTL decrement only.
	deadline := time.Now().Add(5 * time.Second)
	var in []byte
	for in == nil && time.Now().Before(deadline) {
		if err := a.WritePacket(ping("10.3.0.5", "10.1.2.3")); err != nil {
			t.Fatal(err)
		}
		in = c.recv(200 * time.Millisecond)
	}
	if in == nil {
		t.Fatalf("site C received nothing from site A over MASQUE: router %+v, session %+v, wg %+v", l.dp.router.Stats(), a.Stats(), l.dp.ep.Stats())
	}
	sent := ping("10.3.0.5", "10.1.2.3")
	if src := netip.AddrFrom4([4]byte(in[12:16])); src.String() != "10.1.2.3" || in[8] != sent[8]-1 {
		t.Fatalf("site C got a packet from %s with TTL %d, want 10.1.2.3 and %d", src, in[8], sent[8]-1)
	}
	// C (WireGuard) to A (MASQUE).
	c.send(t, ping("10.1.2.3", "10.3.0.5"))
	select {
	case p := <-got:
		if src := netip.AddrFrom4([4]byte(p[12:16])); src.String() != "10.3.0.5" || p[8] != sent[8]-1 {
			t.Fatalf("site A got a packet from %s with TTL %d, want 10.3.0.5 and %d", src, p[8], sent[8]-1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("site A received nothing from site C over MASQUE")
	}
	// A packet from C too large for a MASQUE datagram comes back to C as an
	// ICMP "fragmentation needed" naming the MASQUE session's MTU, with DF;
	// without, it reaches A in fragments. The session's MTU, which the
	// peer's follows, reaches masque.MTU once discovery is done on loopback.
	waitMASQUEPeerMTU(t, l.dp, masque.MTU)
	big := packettest.UDP(packettest.IP{Src: netip.MustParseAddr("10.3.0.5"), Dst: netip.MustParseAddr("10.1.2.3"), DF: true}, 0, 0, make([]byte, 1420-28))
	c.send(t, big)
	if p := c.recv(5 * time.Second); p == nil || p[9] != 1 || p[20] != 3 || p[21] != 4 || int(binary.BigEndian.Uint16(p[26:28])) != masque.MTU {
		t.Fatalf("site C got % x for a packet too large for MASQUE, want ICMP fragmentation needed naming %d", p[:min(len(p), 28)], masque.MTU)
	}
	big = packettest.UDP(packettest.IP{Src: netip.MustParseAddr("10.3.0.5"), Dst: netip.MustParseAddr("10.1.2.3")}, 0, 0, make([]byte, 1420-28))
	c.send(t, big)
	for i, wantMF := range []bool{true, false} {
		select {
		case p := <-got:
			if mf := p[6]&0x20 != 0; mf != wantMF || len(p) > masque.MTU {
				t.Fatalf("site A got fragment %d of %d bytes with MF %v, want MF %v and at most %d bytes", i, len(p), mf, wantMF, masque.MTU)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("site A got %d fragments of a packet too large for MASQUE without DF, want 2", i)
		}
	}
	// A spoofing C's prefix over MASQUE is dropped like over WireGuard.
	before := l.dp.router.Dropped(router.ReasonSpoofed)
	a.WritePacket(ping("10.3.0.5", "10.3.9.9"))
	if p := c.recv(300 * time.Millisecond); p != nil {
		t.Fatal("a spoofed packet was forwarded")
	}
	if after := l.dp.router.Dropped(router.ReasonSpoofed); after != before+1 {
		t.Fatalf("spoofed drops %d -> %d, want one more", before, after)
	}
	if st := l.dp.stats().(Stats); st.MASQUE != 1 || st.MASQUETraffic.RxPackets == 0 || st.MASQUETraffic.QUIC.PacketsReceived < st.MASQUETraffic.RxPackets {
		t.Fatalf("stats count %d MASQUE sessions, traffic %+v; want 1, with packets received (QUIC's at least as many)", st.MASQUE, st.MASQUETraffic)
	}
	// Site A shows as a live connection of its tunnel.
	if cs := l.dp.connections()[tunA.ID]; len(cs) != 1 || cs[0].ID != connA.ID {
		t.Fatalf("connections of site-a = %+v, want connector %s", cs, connA.ID)
	}
}

type chanReceiver chan []byte

func (c chanReceiver) Receive(_ *masque.Session, bufs [][]byte) {
	for _, b := range bufs {
		c <- append([]byte(nil), b[masque.Headroom:]...)
	}
}

// Two replicas of one tunnel on MASQUE: the edge elects one active; when its
// session ends, traffic moves to the other.
func TestMASQUEReplicasFailOver(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	addr, tlsConf := l.serveMASQUE(t)
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	c.send(t, ping("100.96.0.1", "10.3.0.1"))
	l.waitUp(t, 1)

	type replica struct {
		s   *masque.ClientSession
		got chan []byte
	}
	var replicas []replica
	for range 2 {
		key, _ := wireguard.GeneratePrivateKey()
		pub := key.PublicKey()
		conn, err := l.reg.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: base64.StdEncoding.EncodeToString(pub[:])})
		if err != nil {
			t.Fatal(err)
		}
		var s *masque.ClientSession
		deadline := time.Now().Add(5 * time.Second)
		for s == nil {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err = masque.Dial(dctx, masque.ClientConfig{
				Addr: addr, TLS: tlsConf, Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
				Header: http.Header{"Authorization": {"Bearer " + tunnelToken(tun, secret)}, masque.ConnectorHeader: {conn.ID.String()}},
			})
			cancel()
			if err != nil && time.Now().After(deadline) {
				t.Fatal(err) // the data plane never learned the enrollment
			}
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
		defer s.Close()
		r := replica{s: s, got: make(chan []byte, 8)}
		go s.Serve(chanReceiver(r.got))
		replicas = append(replicas, r)
	}
	// receiver sends from C to site A until one replica gets it.
	receiver := func() int {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			c.send(t, ping("10.1.2.3", "10.3.0.5"))
			for i, r := range replicas {
				select {
				case <-r.got:
					return i
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		t.Fatal("no replica of site A received anything")
		return -1
	}
	first := receiver()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cs := l.dp.connections()[tun.ID]
		if len(cs) == 2 && cs[0].State == model.ReplicaActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections of site-a = %+v, want two, the first active", cs)
		}
	}
	replicas[first].s.Close()
	start := time.Now()
	if second := receiver(); second == first {
		t.Fatalf("traffic still goes to replica %d after its session ended", first)
	}
	t.Logf("traffic moved %v after the active replica's session ended", time.Since(start))
}

// One replica holds at most masque.DefaultMaxSessions MASQUE sessions (each
// one rebuilds the edge's tables): one more with the same credential is
// refused with 429, while another replica of the tunnel, on the same token,
// still gets its session.
func TestMASQUESessionsBoundedPerReplica(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	addr, tlsConf := l.serveMASQUE(t)
	tun, secret := l.tunnel(t, "site-a", "", "10.1.0.0/16")
	dial := func(conn model.Connector) (*masque.ClientSession, error) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := masque.Dial(dctx, masque.ClientConfig{
			Addr: addr, TLS: tlsConf, Routes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
			Header: http.Header{"Authorization": {"Bearer " + tunnelToken(tun, secret)}, masque.ConnectorHeader: {conn.ID.String()}},
		})
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	var replicas []model.Connector
	for range 2 {
		key, _ := wireguard.GeneratePrivateKey()
		pub := key.PublicKey()
		conn, err := l.reg.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: base64.StdEncoding.EncodeToString(pub[:])})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); !l.dp.enrolled(conn.ID, tun.ID); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the data plane never saw the enrolled connector")
			}
		}
		replicas = append(replicas, conn)
	}
	a, b := replicas[0], replicas[1]
	for i := range masque.DefaultMaxSessions {
		if _, err := dial(a); err != nil {
			t.Fatalf("session %d of replica a: %v", i+1, err)
		}
	}
	_, err := dial(a)
	var re *masque.RefusedError
	if !errors.As(err, &re) || re.Status != http.StatusTooManyRequests {
		t.Fatalf("session %d of replica a: %v, want a refusal with 429", masque.DefaultMaxSessions+1, err)
	}
	if _, err := dial(b); err != nil {
		t.Fatalf("a session of replica b with the same token: %v", err)
	}
	// The edge opens a session once the agent's routes arrive.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.dp.mu.Lock()
		na, nb := len(l.dp.agents[a.ID])-1, len(l.dp.agents[b.ID])-1 // less the WireGuard session
		l.dp.mu.Unlock()
		if na == masque.DefaultMaxSessions && nb == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MASQUE peers: %d of replica a, %d of replica b; want %d and 1", na, nb, masque.DefaultMaxSessions)
		}
	}
}

// waitMASQUEPeerMTU waits until every MASQUE session's peer has MTU want
// (it follows the session's path MTU discovery).
func waitMASQUEPeerMTU(t *testing.T, d *dataplane, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var mtus []int
		d.mu.Lock()
		for _, ss := range d.agents {
			for _, s := range ss {
				if _, ok := s.link.(masqueLink); ok {
					mtus = append(mtus, s.peer.MTU())
				}
			}
		}
		d.mu.Unlock()
		if len(mtus) > 0 && !slices.ContainsFunc(mtus, func(m int) bool { return m != want }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("MASQUE peers' MTUs %v after 10 s, want %d", mtus, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
