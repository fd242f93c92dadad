package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go4.org/netipx"

	"github.com/switchyard/switchyard/control/model"
)

func mpp(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func stockConfig(mode, endpoint string, entries ...string) model.DeviceConfig {
	cfg := model.DeviceConfig{
		IP: netip.MustParseAddr("100.96.0.7"), OverlayRange: mpp("100.96.0.0/12"), MTU: 1420, VNetName: "default",
		Edge:        model.EdgePeer{Endpoint: endpoint, PublicKey: "EDGEKEYEDGEKEYEDGEKEYEDGEKEYEDGEKEYEDGEKEY0="},
		SplitTunnel: model.SplitTunnel{Mode: mode},
	}
	for _, e := range entries {
		cfg.SplitTunnel.Entries = append(cfg.SplitTunnel.Entries, model.SplitEntry{Address: mpp(e)})
	}
	return cfg
}

func TestStockAllowedIPs(t *testing.T) {
	withDomain := stockConfig(model.SplitInclude, "203.0.113.10:51820", "192.0.2.0/24")
	withDomain.SplitTunnel.Entries = append(withDomain.SplitTunnel.Entries, model.SplitEntry{Domain: "*.corp.example"})
	tests := []struct {
		name string
		cfg  model.DeviceConfig
		want []string
	}{
		{"include: the list and the overlay", stockConfig(model.SplitInclude, "203.0.113.10:51820", "10.0.0.0/8", "192.0.2.0/24", "2001:db8:1::/48"),
			[]string{"10.0.0.0/8", "100.96.0.0/12", "192.0.2.0/24", "2001:db8:1::/48"}},
		{"include: the endpoint never", stockConfig(model.SplitInclude, "203.0.113.10:51820", "203.0.113.8/30"),
			[]string{"100.96.0.0/12", "203.0.113.8/31", "203.0.113.11/32"}},
		{"exclude: the complement over both families", stockConfig(model.SplitExclude, "edge.example.com:51820", "128.0.0.0/1", "::/1"),
			[]string{"0.0.0.0/1", "8000::/1"}},
		{"exclude: the overlay comes back", stockConfig(model.SplitExclude, "edge.example.com:51820", "64.0.0.0/2", "0.0.0.0/2", "128.0.0.0/1", "::/0"),
			[]string{"100.96.0.0/12"}},
		{"include: a domain entry is skipped (no DNS stub)", withDomain, []string{"100.96.0.0/12", "192.0.2.0/24"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stockAllowedIPs(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, p := range got {
				gs = append(gs, p.String())
			}
			if !slices.Equal(gs, tc.want) {
				t.Fatalf("AllowedIPs = %v, want %v", gs, tc.want)
			}
		})
	}
}

// TestStockAllowedIPsComplement: in Exclude mode with the default list,
// AllowedIPs is exactly everything but the excluded prefixes and the edge's
// endpoint, plus the overlay range, checked against a set computed apart.
func TestStockAllowedIPsComplement(t *testing.T) {
	cfg := stockConfig(model.SplitExclude, "203.0.113.10:51820")
	cfg.SplitTunnel.Entries = model.DefaultExcludes()
	got, err := stockAllowedIPs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var gb netipx.IPSetBuilder
	for i, p := range got {
		if i > 0 && got[i-1].Overlaps(p) {
			t.Fatalf("AllowedIPs %v and %v overlap", got[i-1], p)
		}
		gb.AddPrefix(p)
	}
	gotSet, _ := gb.IPSet()
	for _, a := range []string{"198.51.100.1", "8.8.8.8", "100.96.0.1", "100.96.0.7", "100.111.255.254", "203.0.113.9", "203.0.113.11", "2001:db8::1", "fc00::1"} {
		if !gotSet.Contains(netip.MustParseAddr(a)) {
			t.Errorf("%s is not routed to the edge", a)
		}
	}
	for _, a := range []string{"10.1.2.3", "192.168.1.1", "172.16.0.1", "100.64.0.1", "100.112.0.1", "169.254.1.1", "203.0.113.10", "fe80::1", "fd00::1", "ff02::1"} {
		if gotSet.Contains(netip.MustParseAddr(a)) {
			t.Errorf("%s is routed to the edge, but excluded (or the endpoint)", a)
		}
	}
	// Reference: all addresses, less each excluded range and the endpoint, plus the overlay.
	var rb netipx.IPSetBuilder
	rb.AddRange(netipx.IPRangeFrom(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")))
	rb.AddRange(netipx.IPRangeFrom(netip.IPv6Unspecified(), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
	for _, e := range cfg.SplitTunnel.Entries {
		rb.RemoveRange(netipx.RangeOfPrefix(e.Address))
	}
	rb.AddPrefix(cfg.OverlayRange)
	rb.Remove(netip.MustParseAddr("203.0.113.10"))
	want, _ := rb.IPSet()
	if !gotSet.Equal(want) {
		t.Fatalf("AllowedIPs %v\ndiffer from the reference %v", got, want.Prefixes())
	}
}

func TestRenderWGQuick(t *testing.T) {
	d := model.Device{ID: uuid.MustParse("6f1c8a7e-0000-4000-8000-000000000001"), Name: "phone", Key: "DEVICEPUBDEVICEPUBDEVICEPUBDEVICEPUBDEVICE0="}
	cfg := stockConfig(model.SplitInclude, "203.0.113.10:51820", "10.0.0.0/8")
	got, err := renderWGQuick(d, cfg, "PRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEYPRI=")
	if err != nil {
		t.Fatal(err)
	}
	want := `# Switchyard device phone (6f1c8a7e-0000-4000-8000-000000000001), virtual network default
# wg-quick names the interface after this file: save it as IFNAME.conf
[Interface]
Address = 100.96.0.7/32
PrivateKey = PRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEYPRI=
MTU = 1420

[Peer]
# the edge that registered the device
PublicKey = EDGEKEYEDGEKEYEDGEKEYEDGEKEYEDGEKEYEDGEKEY0=
Endpoint = 203.0.113.10:51820
AllowedIPs = 10.0.0.0/8, 100.96.0.0/12
PersistentKeepalive = 25
`
	if got != want {
		t.Fatalf("config:\n%s\nwant:\n%s", got, want)
	}

	// The device keeps its private key: none in the config, a comment instead.
	got, err = renderWGQuick(d, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "PrivateKey =") || !strings.Contains(got, "# PrivateKey: the device's own, whose public key is "+d.Key) {
		t.Fatalf("config with the device's own key:\n%s", got)
	}

	cfg.Edge.Endpoint = ""
	if _, err := renderWGQuick(d, cfg, ""); err == nil || !strings.Contains(err.Error(), "no WireGuard endpoint") {
		t.Fatalf("no endpoint: %v", err)
	}
}
