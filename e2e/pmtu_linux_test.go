//go:build linux

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/edge"
	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/transport/masque"
)

// pingDF sends one echo request of size bytes (IP header included) from ns
// to addr with ping -M pmtu ("do": DF, and IPv6 never fragments in flight;
// "dont": IPv4 may be fragmented) and returns what ping printed and whether
// the reply came.
func pingDF(t *testing.T, ns *lab.NS, addr string, size int, pmtu string) (string, bool) {
	t.Helper()
	fam, hdr := "-4", 28
	if strings.Contains(addr, ":") {
		fam, hdr = "-6", 48
	}
	out, err := ns.Exec("ping", fam, "-n", "-c", "1", "-W", "2", "-M", pmtu, "-s", strconv.Itoa(size-hdr), addr)
	return out, err == nil
}

// tooBigRE matches ping's report of an ICMP too-big error: the router that
// sent it and the MTU it named.
var tooBigRE = regexp.MustCompile(`From (\S+) icmp_seq=\d+ (?:Frag needed and DF set \(mtu = (\d+)\)|Packet too big: mtu=(\d+))`)

// wantTooBig pings addr from ns with DF at size bytes and wants an ICMP
// too-big error from router naming mtu back, not a reply.
func wantTooBig(t *testing.T, w *world, addr string, size int, router string, mtu int) {
	t.Helper()
	out, ok := pingDF(t, w.hosta, addr, size, "do")
	m := tooBigRE.FindStringSubmatch(out)
	if ok || m == nil {
		t.Fatalf("ping -M do of %d bytes to %s: want a too-big error, got:\n%s", size, addr, out)
	}
	if got := m[2] + m[3]; m[1] != router || got != strconv.Itoa(mtu) {
		t.Fatalf("ping of %d bytes to %s: the error came from %s naming MTU %s, want from %s naming %d:\n%s", size, addr, m[1], got, router, mtu, out)
	}
}

// TestPathMTUErrors: site A's connector runs WireGuard (TUN MTU = the edge's
// --mtu), site C's MASQUE (a smaller inner MTU). From a host in site A, a
// ping with DF too large for A's TUN gets Fragmentation Needed / Packet Too
// Big from the connector host's own kernel (forwarding from its LAN into the
// TUN); one that fits A's TUN but not C's session gets it from the edge,
// from the edge's own address, naming the MASQUE MTU; at that MTU the ping
// crosses, and so does an IPv6 packet of 1280 bytes. IPv4 without DF above
// it crosses in fragments.
func TestPathMTUErrors(t *testing.T) {
	w := newWorld(t)
	w.startEdge("--metrics-listen", "127.0.0.1:9108")
	w.cli("tunnel", "vnet", "add", "--default", "vnet-a")
	tokA, tokC := w.tunnelToken("site-a"), w.tunnelToken("site-c")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("tunnel", "route", "ip", "add", "10.3.0.0/16", "site-c")
	w.cli("tunnel", "route", "ip", "add", "2001:db8:1::/48", "site-a")
	w.cli("tunnel", "route", "ip", "add", "2001:db8:3::/48", "site-c")
	w.protocol = "wireguard"
	w.startConnector(w.gwa, "gwa", tokA)
	w.protocol = "masque"
	w.startConnector(w.gwc, "gwc", tokC)
	must(t, eventually(10*time.Second, func() error { return w.hosta.Ping("10.3.0.5", 1) }))
	must(t, eventually(10*time.Second, func() error { return w.hosta.Ping("2001:db8:3::5", 1) }))

	tunMTU, masqueMTU := edge.DefaultMTU, masque.MTU
	if masqueMTU >= tunMTU {
		t.Fatalf("the test needs a MASQUE MTU (%d) below the WireGuard one (%d)", masqueMTU, tunMTU)
	}
	// MASQUE's inner MTU grows from masque.MinMTU with QUIC's path MTU
	// discovery, each side its own direction: wait until the connector's
	// and the edge's have reached the ceiling.
	must(t, eventually(10*time.Second, func() error {
		out, _ := w.gwc.Exec(binary, "connector", "status", "--state-dir", filepath.Join(w.dir, "gwc"), "-o", "json")
		var st localapi.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("connector status: %v: %s", err, out)
		}
		if st.PathMTU == nil || st.PathMTU.AgentToEdge != masqueMTU {
			return fmt.Errorf("site-c's connector: path MTU %s, want %d agent→edge", st.PathMTU.String(), masqueMTU)
		}
		var tunnels []model.Tunnel
		if err := json.Unmarshal([]byte(w.cli("tunnel", "list", "-o", "json")), &tunnels); err != nil {
			return err
		}
		for _, tn := range tunnels {
			if tn.Name == "site-c" && len(tn.Connections) > 0 && tn.Connections[0].PathMTU != nil {
				if got := tn.Connections[0].PathMTU.EdgeToAgent; got != masqueMTU {
					return fmt.Errorf("site-c's MASQUE session: edge→agent MTU %d, want %d", got, masqueMTU)
				}
				return nil
			}
		}
		return errors.New("site-c has no connection with a path MTU in tunnel list")
	}))
	for _, sysctl := range []string{"net.ipv4.ip_forward", "net.ipv4.ip_forward_use_pmtu", "net.ipv4.ip_no_pmtu_disc"} {
		v, err := w.gwa.ReadSysctl(sysctl)
		must(t, err)
		t.Logf("connector host: %s = %s", sysctl, v)
	}
	for _, tc := range []struct {
		name, addr          string
		connector, edgeAddr string // where the errors come from
	}{
		{"IPv4", "10.3.0.5", "10.1.0.1", model.EdgeAddress(model.DefaultOverlayRange).String()},
		{"IPv6", "2001:db8:3::5", "2001:db8:1::1", model.EdgeAddress6.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Larger than A's TUN: the connector host's kernel answers.
			wantTooBig(t, w, tc.addr, tunMTU+8, tc.connector, tunMTU)
			// Fits A's TUN, not C's MASQUE session: the edge answers.
			wantTooBig(t, w, tc.addr, masqueMTU+8, tc.edgeAddr, masqueMTU)
			// At C's MTU, it crosses.
			if out, ok := pingDF(t, w.hosta, tc.addr, masqueMTU, "do"); !ok {
				t.Fatalf("ping -M do of %d bytes did not cross:\n%s", masqueMTU, out)
			}
		})
	}
	t.Run("IPv6 of 1280 bytes crosses", func(t *testing.T) {
		if out, ok := pingDF(t, w.hosta, "2001:db8:3::5", 1280, "do"); !ok {
			t.Fatalf("a 1280-byte IPv6 ping did not cross:\n%s", out)
		}
		if out, ok := pingDF(t, w.hostc, "2001:db8:1::3", 1280, "do"); !ok {
			t.Fatalf("a 1280-byte IPv6 ping did not cross back:\n%s", out)
		}
	})
	t.Run("IPv4 without DF is fragmented", func(t *testing.T) {
		// A fresh destination: host A has learnt C's MTU for 10.3.0.5.
		must(t, w.hostc.AddAddr(lanIf(t, w.hostc, "10."), "10.3.0.6/16"))
		before := w.routerStats().Fragmented
		if out, ok := pingDF(t, w.hosta, "10.3.0.6", masqueMTU+8, "dont"); !ok {
			t.Fatalf("ping -M dont of %d bytes did not cross:\n%s", masqueMTU+8, out)
		}
		if after := w.routerStats().Fragmented; after <= before {
			t.Fatalf("the edge fragmented %d packets, then %d: want more", before, after)
		}
	})
	if st := w.routerStats(); st.Dropped["too_big"] < 2 || st.Replied < 2 {
		t.Fatalf("the edge counted %v too_big drops and %d ICMP errors, want at least 2 each", st.Dropped["too_big"], st.Replied)
	}
	out := scrape(t, w.edge, "127.0.0.1:9108")
	for _, m := range []string{`switchyard_edge_drops_total{layer="router",reason="too_big"}`, "switchyard_edge_fragmented_total"} {
		if !strings.Contains(out, m) {
			t.Fatalf("the metrics have no %s:\n%s", m, out)
		}
	}
}

// routerStats reads the edge router's counters.
func (w *world) routerStats() struct {
	Dropped    map[string]float64 `json:"dropped"`
	Replied    uint64             `json:"icmp_errors"`
	Fragmented uint64             `json:"fragmented"`
} {
	w.t.Helper()
	var st struct {
		Router struct {
			Dropped    map[string]float64 `json:"dropped"`
			Replied    uint64             `json:"icmp_errors"`
			Fragmented uint64             `json:"fragmented"`
		} `json:"router"`
	}
	if err := json.Unmarshal([]byte(w.cli("stats", "-o", "json")), &st); err != nil {
		w.t.Fatal(fmt.Errorf("edge stats: %w", err))
	}
	return st.Router
}
