package masque

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/internal/testpki"
)

// silentPath builds agent ─(1500)─ hop1 ─(mtu, silent)─ hop2 ─(1500)─ edge:
// the middle link has MTU mtu on both ends, segmentation offloads off (so it
// sees packets as a real link would), and both hops drop the ICMP
// "fragmentation needed" they would send. It returns the agent's and the
// edge's namespaces and the edge's address.
func silentPath(t *testing.T, mtu int) (agent, edge *lab.NS, edgeAddr netip.Addr) {
	for _, tool := range []string{"ethtool", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the silent hop needs %s: %v", tool, err)
		}
	}
	l := lab.New(t)
	agent, hop1, hop2, edge := l.NS("agent"), l.NS("hop1"), l.NS("hop2"), l.NS("edge")
	l.Link(agent, "192.0.2.1/30", hop1, "192.0.2.2/30")
	small1, small2 := l.Link(hop1, "192.0.2.5/30", hop2, "192.0.2.6/30")
	l.Link(hop2, "192.0.2.9/30", edge, "192.0.2.10/30")
	for _, e := range []struct {
		ns     *lab.NS
		ifname string
	}{{hop1, small1}, {hop2, small2}} {
		e.ns.MustExec(t, "ip", "link", "set", e.ifname, "mtu", strconv.Itoa(mtu))
		e.ns.MustExec(t, "ethtool", "-K", e.ifname, "tso", "off", "gso", "off", "gro", "off")
		e.ns.MustExec(t, "nft", "add table inet silent; "+
			"add chain inet silent out { type filter hook output priority 0; policy accept; }; "+
			"add rule inet silent out icmp type destination-unreachable icmp code frag-needed drop")
		if err := e.ns.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
			t.Fatal(err)
		}
	}
	agent.MustExec(t, "ip", "route", "add", "default", "via", "192.0.2.2")
	hop1.MustExec(t, "ip", "route", "add", "192.0.2.8/30", "via", "192.0.2.6")
	hop2.MustExec(t, "ip", "route", "add", "192.0.2.0/30", "via", "192.0.2.5")
	edge.MustExec(t, "ip", "route", "add", "default", "via", "192.0.2.9")
	// The hop is silent: a ping of mtu bytes crosses, one byte more is lost
	// without an error (ping -M do would print "Frag needed" otherwise).
	if out, err := agent.Exec("ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", strconv.Itoa(mtu-28), "192.0.2.10"); err != nil {
		t.Fatalf("a ping of %d bytes did not cross: %v\n%s", mtu, err, out)
	}
	if mtu < 1500 {
		if out, err := agent.Exec("ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", strconv.Itoa(mtu-27), "192.0.2.10"); err == nil {
			t.Fatalf("a ping of %d bytes crossed the %d-byte hop:\n%s", mtu+1, mtu, out)
		}
	}
	return agent, edge, netip.MustParseAddr("192.0.2.10")
}

// TestSilentSmallHop: behind a hop of 1280 bytes that drops larger packets
// without telling anyone, a session comes up (it did not while QUIC started
// at 1452 bytes), both sides' inner MTU grows above MinMTU to at most what
// the path carries (1280 - 20 - 8 - quicOverhead - datagramOverhead = 1213),
// a packet of exactly that MTU crosses both ways, and one byte more is
// refused with ErrTooBig and counted. At 1500 both sides reach MTU.
func TestSilentSmallHop(t *testing.T) {
	for _, tc := range []struct{ path, want int }{
		{1280, 1280 - 20 - 8 - quicOverhead - datagramOverhead},
		{1500, MTU},
	} {
		t.Run(strconv.Itoa(tc.path), func(t *testing.T) {
			agentNS, edgeNS, edgeAddr := silentPath(t, tc.path)
			all4 := netip.MustParsePrefix("0.0.0.0/0")
			h := &testHandler{grant: Grant{Addresses: []netip.Prefix{overlay}, Routes: []netip.Prefix{all4}},
				opened: make(chan []netip.Prefix, 4), closed: make(chan *Session, 4), served: make(chan *Session, 1)}
			srv, tlsConf := serverIn(t, edgeNS, edgeAddr, h)
			var cs *ClientSession
			start := time.Now()
			err := agentNS.Do(func() (err error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cs, err = Dial(ctx, ClientConfig{
					Addr: netip.AddrPortFrom(edgeAddr, srv.Port()).String(),
					TLS:  tlsConf, Header: bearer("good"), ExpectAddress: true,
				})
				return err
			})
			if err != nil {
				t.Fatalf("no session across the silent %d-byte hop: %v", tc.path, err)
			}
			defer cs.Close()
			t.Logf("session up in %v at inner MTU %d", time.Since(start).Round(time.Millisecond), cs.MTU())
			edge := <-h.served
			got := make(collect, 16)
			go cs.Serve(got)
			for _, side := range []struct {
				name string
				s    *Session
			}{{"agent", cs.Session}, {"edge", edge}} {
				if err := settleMTU(side.s, tc.want); err != nil {
					t.Fatalf("%s: %v", side.name, err)
				}
			}
			t.Logf("inner MTU %d on both sides after %v", tc.want, time.Since(start).Round(time.Millisecond))
			// Exactly the MTU crosses both ways (the edge echoes it).
			dst := netip.MustParseAddr("203.0.113.5")
			if err := cs.WritePacket(ipv4(overlay.Addr(), dst, 64, tc.want)); err != nil {
				t.Fatalf("WritePacket(%d bytes) = %v", tc.want, err)
			}
			select {
			case back := <-got:
				if len(back) != tc.want {
					t.Fatalf("echoed %d bytes, want %d", len(back), tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("a packet of the reported MTU (%d) did not cross the %d-byte path and back", tc.want, tc.path)
			}
			if err := cs.WritePacket(ipv4(overlay.Addr(), dst, 64, tc.want+1)); !errors.Is(err, ErrTooBig) {
				t.Fatalf("WritePacket(%d bytes) = %v, want ErrTooBig", tc.want+1, err)
			}
			if st := cs.Stats(); st.TxTooBig != 1 {
				t.Errorf("agent stats %+v, want tx_too_big 1", st)
			}
		})
	}
}

// serverIn starts a Server for h on addr with its socket in ns, and returns
// it with the TLS configuration that trusts it.
func serverIn(t *testing.T, ns *lab.NS, addr netip.Addr, h Handler) (*Server, *tls.Config) {
	t.Helper()
	cert, tlsConf := testpki.Server(t)
	var srv *Server
	if err := ns.Do(func() (err error) {
		srv, err = NewServer(ServerConfig{Listen: netip.AddrPortFrom(addr, 0).String(), Certificate: cert, Handler: h})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, tlsConf
}

// settleMTU waits until s reports want and keeps it for a while (discovery
// may only ever grow it, and must not overshoot what the path carries).
func settleMTU(s *Session, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	for s.MTU() != want {
		if s.MTU() > want {
			return errors.New("inner MTU " + strconv.Itoa(s.MTU()) + " above what the path carries, " + strconv.Itoa(want))
		}
		if time.Now().After(deadline) {
			return errors.New("inner MTU " + strconv.Itoa(s.MTU()) + " after 20 s, want " + strconv.Itoa(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if s.MTU() != want {
		return errors.New("inner MTU moved from " + strconv.Itoa(want) + " to " + strconv.Itoa(s.MTU()))
	}
	return nil
}
