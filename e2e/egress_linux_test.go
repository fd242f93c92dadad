//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/internal/packettest"
)

// TestEgressSite runs an egress site: site A's tunnel routes 0.0.0.0/0 (the
// sites and devices of its virtual network reach the internet through it)
// besides its own 10.1.0.0/16. Its connector comes up, carries site-to-site
// and site-to-device traffic both ways with true source addresses, and still
// may not send as a device or as the edge; the connector of site C, which
// now routes the default through the tunnel, keeps its own path to the edge.
func TestEgressSite(t *testing.T) {
	w := newWorld(t)
	w.startEdge()
	tokA, tokC := w.tunnelToken("egress"), w.tunnelToken("site-c")
	out := w.cli("tunnel", "route", "ip", "add", "0.0.0.0/0", "egress")
	if !strings.Contains(out, "Warning: route 0.0.0.0/0 covers the device overlay range 100.96.0.0/12") {
		t.Errorf("adding 0.0.0.0/0 printed no warning about the overlay range:\n%s", out)
	}
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "egress")
	w.cli("tunnel", "route", "ip", "add", "10.3.0.0/16", "site-c")
	if out, err := w.edge.Exec(binary, "--config", filepath.Join(w.dir, "edge", "admin.json"),
		"tunnel", "route", "ip", "add", "100.96.0.0/16", "egress"); err == nil || !strings.Contains(out, "device overlay range") {
		t.Errorf("a route inside the overlay range: err %v, output %q; want it refused", err, out)
	}
	// The laptop sends the sites and one internet range into its tunnel.
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	w.cli("split-tunnel", "add", "198.51.100.0/24")

	w.startConnector(w.gwa, "gwa", tokA)
	w.startConnector(w.gwc, "gwc", tokC)
	_, laptopIP := w.startClient(w.laptop, "laptop")

	w.hosta.Echo(t, "10.1.2.3:7000")
	w.hostc.Echo(t, "10.3.0.5:7000")
	w.laptop.Echo(t, laptopIP+":7000")
	// An "internet" server behind the egress site.
	must(t, w.gwa.AddAddr("lo", "198.51.100.1/32"))
	w.gwa.Echo(t, "198.51.100.1:7000")

	t.Run("both connectors come up", func(t *testing.T) {
		for _, s := range []struct {
			name string
			ns   *lab.NS
		}{{"gwa", w.gwa}, {"gwc", w.gwc}} {
			err := eventually(5*time.Second, func() error {
				out, err := s.ns.Exec(binary, "connector", "status", "--state-dir", filepath.Join(w.dir, s.name))
				if err != nil {
					return fmt.Errorf("connector status on %s: %w\n%s", s.name, err, out)
				}
				return nil
			})
			must(t, err)
		}
		routes, _ := w.gwa.Exec("ip", "route", "show", "dev", "sy0")
		for _, want := range []string{"10.3.0.0/16", "100.96.0.0/12"} {
			if !strings.Contains(routes, want) {
				t.Errorf("the egress site routes no %s into its TUN:\n%s", want, routes)
			}
		}
		// The edge's endpoint stays on each host's WAN; site C sends the
		// internet into the tunnel.
		for ns, want := range map[*lab.NS]map[string]bool{
			w.gwa: {edgeAddr: false, "198.51.100.7": false, "10.3.0.5": true, "100.96.0.1": true},
			w.gwc: {edgeAddr: false, "198.51.100.7": true, "10.1.2.3": true, "100.96.0.1": true},
		} {
			for dst, tunnel := range want {
				if got := routeDev(ns, dst); (got == "sy0") != tunnel {
					t.Errorf("%s sends %s out of %s; want the tunnel: %v", ns, dst, got, tunnel)
				}
			}
		}
	})
	t.Run("site to site with true source IPs both ways", func(t *testing.T) {
		wantPeer(t, w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3")
		wantPeer(t, w.hostc, "tcp", "10.1.2.3:7000", "10.3.0.5")
		wantPeer(t, w.hostc, "udp", "10.1.2.3:7000", "10.3.0.5")
		must(t, w.hosta.Ping("10.3.0.5", 2))
	})
	t.Run("site to device both ways", func(t *testing.T) {
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", laptopIP)
		wantPeer(t, w.hosta, "tcp", laptopIP+":7000", "10.1.2.3")
		wantPeer(t, w.hosta, "udp", laptopIP+":7000", "10.1.2.3")
	})
	t.Run("sites and devices reach the internet through it", func(t *testing.T) {
		wantPeer(t, w.hostc, "tcp", "198.51.100.1:7000", "10.3.0.5")
		wantPeer(t, w.laptop, "tcp", "198.51.100.1:7000", laptopIP)
	})
	t.Run("forged device and edge sources are dropped", func(t *testing.T) {
		echoC := w.hostc.Echo(t, "10.3.0.5:7001")
		echoL := w.laptop.Echo(t, laptopIP+":7001")
		before := w.spoofedDrops()
		forged := []struct{ src, dst string }{
			{laptopIP, "10.3.0.5"},     // as the laptop, to site C
			{"100.96.0.1", "10.3.0.5"}, // as the edge, to site C
			{"100.96.9.9", laptopIP},   // as an unassigned overlay address, to the laptop
			{"100.96.0.1", laptopIP},   // as the edge, to the laptop
		}
		for _, f := range forged {
			must(t, w.gwa.Do(func() error { return sendRawUDP(f.src, f.dst, 7001) }))
		}
		if err := eventually(3*time.Second, func() error {
			if after := w.spoofedDrops(); after < before+float64(len(forged)) {
				return fmt.Errorf("the edge's spoofed-source counter went from %v to %v, want +%d", before, after, len(forged))
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		time.Sleep(200 * time.Millisecond) // anything forwarded would have arrived by now
		if p := append(echoC.Peers(), echoL.Peers()...); len(p) != 0 {
			t.Errorf("forged packets reached a server, from %v", p)
		}
	})
}

// routeDev returns the interface ns sends dst out of.
func routeDev(ns *lab.NS, dst string) string {
	out, _ := ns.Exec("ip", "route", "get", dst)
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" {
			return f[i+1]
		}
	}
	return out
}

// sendRawUDP sends one IPv4 UDP datagram from src to dst:port through a raw
// socket, which lets the source be any address; run it inside a namespace.
func sendRawUDP(src, dst string, port uint16) error {
	pkt := packettest.UDP(packettest.IP{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}, 40000, port, []byte("forged\n"))
	d := netip.MustParseAddr(dst).As4()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: d}); err != nil {
		return fmt.Errorf("send forged %s -> %s: %w", src, dst, err)
	}
	return nil
}
