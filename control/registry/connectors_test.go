package registry

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

func newKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestEnrollConnector(t *testing.T) {
	r := newRegistry(t)
	fra, secret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "fra"}))
	syd, sydSecret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "syd"}))
	key := newKey()
	c := must(r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, Hostname: "gw1"}))(t)
	again := must(r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, Hostname: "gw1", Version: "2"}))(t)
	if again.ID != c.ID || again.Version != "2" {
		t.Fatalf("re-enrolling the same key: %+v, want connector %s updated", again, c.ID)
	}
	_, err := r.EnrollConnector(ctx, syd.ID, sydSecret, model.ConnectorEnrollment{PublicKey: key})
	wantKind(t, err, model.ErrConflict, "already enrolled")
	_, err = r.EnrollConnector(ctx, fra.ID, sydSecret, model.ConnectorEnrollment{PublicKey: newKey()})
	wantKind(t, err, model.ErrUnauthorized, "invalid tunnel token")
	_, err = r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: "bm90IGEga2V5"})
	wantKind(t, err, model.ErrInvalid, "not a base64 WireGuard key")

	must(r.CreateVNet(ctx, model.NewVNet{Name: "other"}))(t)
	for _, rt := range []model.NewRoute{
		{Network: mpp("10.1.0.0/16"), Tunnel: "fra"},
		{Network: mpp("2001:db8:1::/48"), Tunnel: "fra"},
		{Network: mpp("10.3.0.0/16"), Tunnel: "syd"},
	} {
		must(r.AddRoute(ctx, rt))(t)
	}
	other, otherSecret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "far"}))
	must(r.AddRoute(ctx, model.NewRoute{Network: mpp("10.9.0.0/16"), Tunnel: "far", VNet: "other"}))(t)

	cfg := must(r.ConnectorConfig(ctx, c.ID))(t)
	if cfg.VNetName != "default" || cfg.TunnelName != "fra" ||
		fmt.Sprint(cfg.SitePrefixes) != "[10.1.0.0/16 2001:db8:1::/48]" ||
		fmt.Sprint(cfg.Routes) != "[10.3.0.0/16 100.96.0.0/12]" {
		t.Fatalf("connector config = %+v", cfg)
	}
	farConn := must(r.EnrollConnector(ctx, other.ID, otherSecret, model.ConnectorEnrollment{PublicKey: newKey()}))(t)
	if cfg := must(r.ConnectorConfig(ctx, farConn.ID))(t); cfg.VNetName != "other" || fmt.Sprint(cfg.Routes) != "[100.96.0.0/12]" {
		t.Fatalf("config of a connector alone in its vnet = %+v", cfg)
	}

	snap := must(r.Snapshot(ctx))(t)
	if len(snap.Connectors) != 2 || len(snap.Routes) != 4 || len(snap.VNets) != 2 || snap.Rev == 0 {
		t.Fatalf("snapshot = %+v", snap)
	}
	must(r.DeleteTunnel(ctx, "fra", true))(t)
	if _, err := r.ConnectorConfig(ctx, c.ID); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("config of a deleted tunnel's connector: %v", err)
	}
}

// TestConnectorSiteAddrs: a connector's site addresses are kept across an
// enrollment that gives none (nil), replaced by one that gives some, and
// refused when too many or not a host's unicast address.
func TestConnectorSiteAddrs(t *testing.T) {
	r := newRegistry(t)
	fra, secret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "fra"}))
	key := newKey()
	a := []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("2001:db8:1::1")}
	c := must(r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, Hostname: "gw1", SiteAddrs: a}))(t)
	if fmt.Sprint(c.SiteAddrs) != "[10.1.0.1 2001:db8:1::1]" {
		t.Fatalf("site addresses %v", c.SiteAddrs)
	}
	c = must(r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, Hostname: "gw1"}))(t)
	if len(c.SiteAddrs) != 2 {
		t.Fatalf("enrolling without addresses dropped them: %v", c.SiteAddrs)
	}
	c = must(r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, Hostname: "gw1", SiteAddrs: a[1:]}))(t)
	if snap := must(r.Snapshot(ctx))(t); fmt.Sprint(snap.Connectors[0].SiteAddrs) != "[2001:db8:1::1]" {
		t.Fatalf("snapshot site addresses %v", snap.Connectors[0].SiteAddrs)
	}
	for _, bad := range []string{"127.0.0.1", "fe80::1", "0.0.0.0", "224.0.0.1", "::ffff:10.1.0.1"} {
		_, err := r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, SiteAddrs: []netip.Addr{netip.MustParseAddr(bad)}})
		wantKind(t, err, model.ErrInvalid, "not a host's unicast address")
	}
	many := make([]netip.Addr, model.MaxSiteAddrs+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)})
	}
	_, err := r.EnrollConnector(ctx, fra.ID, secret, model.ConnectorEnrollment{PublicKey: key, SiteAddrs: many})
	wantKind(t, err, model.ErrInvalid, "at most")
}
