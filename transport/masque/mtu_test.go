package masque

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitMTU waits until s reports an inner MTU of want.
func waitMTU(t *testing.T, s *Session, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.MTU() != want {
		if time.Now().After(deadline) {
			t.Fatalf("inner MTU %d after 10 s, want %d", s.MTU(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mtuLog records what NotifyMTU reports.
type mtuLog struct {
	mu   sync.Mutex
	seen []int
}

func (m *mtuLog) add(mtu int) { m.mu.Lock(); m.seen = append(m.seen, mtu); m.mu.Unlock() }

func (m *mtuLog) values() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.seen...)
}

// TestPathMTUDiscoveryGrows: on loopback both sides start at MinMTU or more
// and grow to MTU, telling NotifyMTU. It fails with quic-go's path MTU
// discovery off (quicConfig's DisablePathMTUDiscovery), which leaves both at
// MinMTU.
func TestPathMTUDiscoveryGrows(t *testing.T) {
	all4 := netip.MustParsePrefix("0.0.0.0/0")
	srv, h, tlsConf := startServer(t, Grant{Addresses: []netip.Prefix{overlay}, Routes: []netip.Prefix{all4}})
	h.served = make(chan *Session, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := Dial(ctx, ClientConfig{
		Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String(),
		TLS:  tlsConf, Header: bearer("good"), ExpectAddress: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	edge := <-h.served
	var agentSeen, edgeSeen mtuLog
	cs.NotifyMTU(agentSeen.add)
	edge.NotifyMTU(edgeSeen.add)
	for _, side := range []struct {
		name string
		s    *Session
		seen *mtuLog
	}{{"agent", cs.Session, &agentSeen}, {"edge", edge, &edgeSeen}} {
		waitMTU(t, side.s, MTU)
		seen := side.seen.values()
		if len(seen) == 0 || seen[0] < MinMTU || seen[len(seen)-1] != MTU {
			t.Errorf("%s: NotifyMTU reported %v, want from at least %d up to %d", side.name, seen, MinMTU, MTU)
		}
	}
}

// TestTooBigRefusedAndLogged: a packet one byte above the session's MTU is
// refused with ErrTooBig, never reaches the edge, is counted, and logged at
// most once per tooBigLogGap; a packet of exactly MTU still crosses (and is
// echoed, once the edge's side has found MTU too).
func TestTooBigRefusedAndLogged(t *testing.T) {
	all4 := netip.MustParsePrefix("0.0.0.0/0")
	srv, h, tlsConf := startServer(t, Grant{Addresses: []netip.Prefix{overlay}, Routes: []netip.Prefix{all4}})
	h.served = make(chan *Session, 1)
	var logBuf syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := Dial(ctx, ClientConfig{
		Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.Port()).String(),
		TLS:  tlsConf, Header: bearer("good"), ExpectAddress: true,
		Log: slog.New(slog.NewTextHandler(&logBuf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := make(collect, 16)
	go cs.Serve(got)
	waitMTU(t, cs.Session, MTU)
	waitMTU(t, <-h.served, MTU) // the echo of a full-size packet needs it
	dst := netip.MustParseAddr("203.0.113.5")
	for range 3 {
		if err := cs.WritePacket(ipv4(overlay.Addr(), dst, 64, MTU+1)); !errors.Is(err, ErrTooBig) {
			t.Fatalf("WritePacket(%d bytes, MTU %d) = %v, want ErrTooBig", MTU+1, cs.MTU(), err)
		}
	}
	if err := cs.WritePacket(ipv4(overlay.Addr(), dst, 64, MTU)); err != nil {
		t.Fatalf("WritePacket(%d bytes) = %v", MTU, err)
	}
	select {
	case back := <-got:
		if len(back) != MTU {
			t.Errorf("echoed %d bytes, want only the %d-byte packet", len(back), MTU)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo within 5 s")
	}
	select {
	case back := <-got:
		t.Errorf("a second echo of %d bytes: a refused packet crossed", len(back))
	case <-time.After(200 * time.Millisecond):
	}
	if st := cs.Stats(); st.TxTooBig != 3 || st.TxPackets != 1 {
		t.Errorf("stats %+v, want tx_too_big 3, tx_packets 1", st)
	}
	if n := strings.Count(logBuf.String(), "refused a packet larger than its inner mtu"); n != 1 {
		t.Errorf("%d log lines for 3 refused packets, want 1 (rate-limited):\n%s", n, logBuf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
