package dns

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestNetstackDialer forwards through the userspace mode's dialer, here
// over host sockets standing in for the stack's: UDP through an
// unconnected socket, TCP after a truncated answer.
func TestNetstackDialer(t *testing.T) {
	site := serve(t, "127.0.0.1", func(network string, req *dns.Msg) *dns.Msg {
		if network == "udp" && req.Question[0].Name == "big.corp.example." {
			r := new(dns.Msg).SetReply(req)
			r.Truncated = true
			return r
		}
		return answerA("192.0.2.10")(network, req)
	})
	var udp, tcp atomic.Int64
	var d net.Dialer
	dial := NetstackDialer(func() (net.PacketConn, error) {
		udp.Add(1)
		return net.ListenPacket("udp", "127.0.0.1:0")
	}, func(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
		tcp.Add(1)
		return d.DialContext(ctx, "tcp", dst.String())
	})
	s, err := NewStub(StubConfig{Tunnel: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Set(Config{Resolvers: []Rule{{Domain: "corp.example", Servers: []netip.AddrPort{site.addr}}}})
	got, err := s.Lookup(context.Background(), "app.corp.example")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.10") {
		t.Errorf("Lookup = %v, %v", got, err)
	}
	if udp.Load() != 2 || tcp.Load() != 0 {
		t.Errorf("%d udp sockets and %d tcp dials, want 2 and 0", udp.Load(), tcp.Load())
	}
	if _, err := s.Lookup(context.Background(), "big.corp.example"); err != nil {
		t.Errorf("Lookup after truncation: %v", err)
	}
	if tcp.Load() != 2 {
		t.Errorf("%d tcp dials after truncated answers, want 2", tcp.Load())
	}
}

// TestPeerConnDropsOthers: the unconnected socket reads only its peer's datagrams.
func TestPeerConnDropsOthers(t *testing.T) {
	peer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	other, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dial := NetstackDialer(func() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }, nil)
	c, err := dial(context.Background(), "udp", peer.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(net.PacketConn); !ok {
		t.Fatal("a udp connection is not a net.PacketConn: DNS would frame it as TCP")
	}
	if _, err := c.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_, from, err := peer.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	other.WriteTo([]byte("spoof"), from)
	time.Sleep(10 * time.Millisecond) // the spoofed datagram arrives first
	peer.WriteTo([]byte("answer"), from)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Errorf("read %q, %v; want the peer's answer", buf[:n], err)
	}
}
