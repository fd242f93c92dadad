package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store/memstore"
)

type fixedSecrets struct{}

func (fixedSecrets) TunnelSecret(id uuid.UUID) []byte { return append([]byte("secret-"), id[:]...) }

func newRegistry(t *testing.T) *Registry {
	t.Helper()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	r, err := New(context.Background(), st, Options{Secrets: fixedSecrets{}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var ctx = context.Background()

func mpp(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// must returns v, or fails the test given to the returned function.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantKind(t *testing.T, err error, k *model.Error, contains string) {
	t.Helper()
	if !errors.Is(err, k) {
		t.Fatalf("got error %v, want kind %v", err, k.Kind)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

func TestDefaultVNet(t *testing.T) {
	r := newRegistry(t)
	vnets := must(r.ListVNets(ctx, model.VNetFilter{}))(t)
	if len(vnets) != 1 || vnets[0].Name != "default" || !vnets[0].IsDefault {
		t.Fatalf("new store vnets = %+v, want one default named default", vnets)
	}
	b := must(r.CreateVNet(ctx, model.NewVNet{Name: "b", IsDefault: true}))(t)
	yes := true
	defs := must(r.ListVNets(ctx, model.VNetFilter{IsDefault: &yes}))(t)
	if len(defs) != 1 || defs[0].ID != b.ID {
		t.Fatalf("defaults after adding b --default = %+v", defs)
	}
	_, err := r.DeleteVNet(ctx, "b", true)
	wantKind(t, err, model.ErrForbidden, "default")
	no := false
	_, err = r.UpdateVNet(ctx, "b", model.VNetPatch{IsDefault: &no})
	wantKind(t, err, model.ErrInvalid, "make another one the default")
	must(r.UpdateVNet(ctx, "default", model.VNetPatch{IsDefault: &yes}))(t)
	must(r.DeleteVNet(ctx, b.ID.String(), false))(t)
	if got := must(r.ListVNets(ctx, model.VNetFilter{}))(t); len(got) != 1 {
		t.Fatalf("live vnets after delete = %+v", got)
	}
	if got := must(r.ListVNets(ctx, model.VNetFilter{ShowDeleted: true}))(t); len(got) != 2 || got[1].DeletedAt == nil {
		t.Fatalf("--show-deleted = %+v", got)
	}
	// The name of a deleted vnet can be used again.
	must(r.CreateVNet(ctx, model.NewVNet{Name: "b"}))(t)
}

func TestVNetNames(t *testing.T) {
	r := newRegistry(t)
	must(r.CreateVNet(ctx, model.NewVNet{Name: "a"}))(t)
	tests := []struct {
		name string
		req  model.NewVNet
		kind *model.Error
		msg  string
	}{
		{"duplicate", model.NewVNet{Name: "a"}, model.ErrConflict, "already exists"},
		{"empty", model.NewVNet{Name: ""}, model.ErrInvalid, "empty"},
		{"space", model.NewVNet{Name: "a b"}, model.ErrInvalid, "invalid"},
		{"too long", model.NewVNet{Name: strings.Repeat("x", 65)}, model.ErrInvalid, "limit"},
		{"uuid", model.NewVNet{Name: uuid.NewString()}, model.ErrInvalid, "looks like an id"},
		{"comment", model.NewVNet{Name: "c", Comment: strings.Repeat("x", 1025)}, model.ErrInvalid, "comment"},
		{"control char", model.NewVNet{Name: "c", Comment: "a\x00b"}, model.ErrInvalid, "control"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.CreateVNet(ctx, tc.req)
			wantKind(t, err, tc.kind, tc.msg)
		})
	}
	if got := must(r.ListVNets(ctx, model.VNetFilter{ShowDeleted: true}))(t); len(got) != 2 {
		t.Fatalf("refused requests changed the store: %+v", got)
	}
	must(r.CreateVNet(ctx, model.NewVNet{Name: "b"}))(t)
	name := "b"
	_, err := r.UpdateVNet(ctx, "a", model.VNetPatch{Name: &name})
	wantKind(t, err, model.ErrConflict, "already exists")
}

func TestRoutes(t *testing.T) {
	r := newRegistry(t)
	syd := must(r.CreateVNet(ctx, model.NewVNet{Name: "syd"}))(t)
	tun, _ := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "t1"}))
	tun2, _ := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "t2"}))
	add := func(vnet, cidr string) (model.Route, error) {
		tunnel := "t1"
		if vnet == "syd" {
			tunnel = "t2"
		}
		return r.AddRoute(ctx, model.NewRoute{Network: mpp(cidr), Tunnel: tunnel, VNet: vnet})
	}
	wide := must(add("", "198.51.100.0/24"))(t)
	must(add("", "198.51.100.128/25"))(t)
	must(add("", "2001:db8::/32"))(t)
	_, err := add("", "198.51.100.0/24")
	var e *model.Error
	if !errors.As(err, &e) || e.Code != 1014 || e.Message != "You already have a route defined for this exact IP subnet" {
		t.Fatalf("duplicate route: got %v, want code 1014", err)
	}
	other := must(add(syd.Name, "198.51.100.0/24"))(t)
	if other.VNetID != syd.ID || other.TunnelID != tun2.ID {
		t.Fatalf("route in syd = %+v", other)
	}
	_, err = r.AddRoute(ctx, model.NewRoute{Network: mpp("203.0.113.0/24"), Tunnel: "t1", VNet: "syd"})
	wantKind(t, err, model.ErrConflict, "a tunnel serves one virtual network")
	_, err = r.AddRoute(ctx, model.NewRoute{Network: netip.PrefixFrom(netip.MustParseAddr("198.51.100.7"), 24), Tunnel: "t1"})
	wantKind(t, err, model.ErrInvalid, "198.51.100.0/24")
	_, err = r.AddRoute(ctx, model.NewRoute{Network: mpp("203.0.113.0/24"), Tunnel: "nope"})
	wantKind(t, err, model.ErrNotFound, "nope")
	_, err = r.AddRoute(ctx, model.NewRoute{Network: mpp("203.0.113.0/24"), Tunnel: "t1", VNet: "nope"})
	wantKind(t, err, model.ErrNotFound, "nope")

	lookups := []struct {
		vnet, ip, want string
	}{
		{"", "198.51.100.1", "198.51.100.0/24"},
		{"", "198.51.100.200", "198.51.100.128/25"},
		{"", "2001:db8::1", "2001:db8::/32"},
		{"syd", "198.51.100.200", "198.51.100.0/24"},
		{"", "203.0.113.1", ""},
		{"syd", "2001:db8::1", ""},
	}
	for _, tc := range lookups {
		got, err := r.GetRoute(ctx, tc.vnet, netip.MustParseAddr(tc.ip))
		if tc.want == "" {
			wantKind(t, err, model.ErrNotFound, "No route matches the IP "+tc.ip)
			continue
		}
		if err != nil || got.Network != mpp(tc.want) {
			t.Errorf("GetRoute(%q, %s) = %v, %v; want %s", tc.vnet, tc.ip, got.Network, err, tc.want)
		}
	}

	p24, p16 := mpp("198.51.100.0/24"), mpp("198.51.0.0/16")
	comment := "x"
	filters := []struct {
		name string
		f    model.RouteFilter
		want []string
	}{
		{"all", model.RouteFilter{}, []string{"default 198.51.100.0/24", "default 198.51.100.128/25", "default 2001:db8::/32", "syd 198.51.100.0/24"}},
		{"vnet", model.RouteFilter{VNet: "syd"}, []string{"syd 198.51.100.0/24"}},
		{"subset of /24", model.RouteFilter{SubsetOf: &p24}, []string{"default 198.51.100.0/24", "default 198.51.100.128/25", "syd 198.51.100.0/24"}},
		{"subset of /16", model.RouteFilter{SubsetOf: &p16, VNet: "default"}, []string{"default 198.51.100.0/24", "default 198.51.100.128/25"}},
		{"superset of /24", model.RouteFilter{SupersetOf: &p24}, []string{"default 198.51.100.0/24", "syd 198.51.100.0/24"}},
		{"superset of /16", model.RouteFilter{SupersetOf: &p16}, nil},
		{"comment", model.RouteFilter{Comment: &comment}, nil},
		{"tunnel", model.RouteFilter{Tunnel: tun2.ID.String()}, []string{"syd 198.51.100.0/24"}},
		{"tunnel and vnet", model.RouteFilter{Tunnel: tun.ID.String(), VNet: "syd"}, nil},
	}
	for _, tc := range filters {
		routes, err := r.ListRoutes(ctx, tc.f)
		var got []string
		for _, rt := range routes {
			got = append(got, rt.VNetName+" "+rt.Network.String())
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: ListRoutes = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}

	ov := must(r.Overlaps(ctx))(t)
	if len(ov) != 1 || ov[0].Network != p24 || len(ov[0].Routes) != 3 {
		t.Fatalf("overlaps = %+v; want one group at %s with 3 routes", ov, p24)
	}

	_, err = r.DeleteVNet(ctx, "syd", false)
	wantKind(t, err, model.ErrConflict, "route")
	_, err = r.DeleteTunnel(ctx, "t1", false)
	wantKind(t, err, model.ErrConflict, "route")

	must(r.DeleteRoute(ctx, "", wide.ID.String()))(t)
	if _, err := r.DeleteRoute(ctx, "", wide.ID.String()); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	must(r.DeleteRoute(ctx, "", "198.51.100.128/25"))(t)
	got, err := r.GetRoute(ctx, "", netip.MustParseAddr("198.51.100.200"))
	wantKind(t, err, model.ErrNotFound, "No route")
	_ = got
	if n := must(r.DeleteVNet(ctx, "syd", true))(t); n != 1 {
		t.Fatalf("forced vnet delete removed %d routes, want 1", n)
	}
	if n := must(r.DeleteTunnel(ctx, "t1", true))(t); n != 1 {
		t.Fatalf("forced tunnel delete removed %d routes, want 1", n)
	}
	if n := must(r.DeleteTunnel(ctx, "t2", false))(t); n != 0 {
		t.Fatalf("tunnel delete removed %d routes, want 0 (its vnet went with --force)", n)
	}
	if routes := must(r.ListRoutes(ctx, model.RouteFilter{}))(t); len(routes) != 0 {
		t.Fatalf("routes left after forced deletes: %+v", routes)
	}
}

func must2(t *testing.T) func(model.Tunnel, []byte, error) (model.Tunnel, []byte) {
	return func(tun model.Tunnel, s []byte, err error) (model.Tunnel, []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tun, s
	}
}

// A route inside what belongs to devices and the edge is refused; one that
// covers it (an egress site's default route) is added with a warning.
func TestRoutesNeverTakeTheEdgesAddresses(t *testing.T) {
	r := newRegistry(t)
	must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "egress"}))
	tests := []struct {
		cidr    string
		refused string // part of the error; empty: added
		warn    string // part of a warning
	}{
		{"100.96.0.0/12", "lies in the device overlay range 100.96.0.0/12", ""},
		{"100.96.0.1/32", "lies in the device overlay range", ""},
		{"100.100.0.0/16", "lies in the device overlay range", ""},
		{"fd00:5359:6564:6765::1/128", "the edge's own address fd00:5359:6564:6765::1", ""},
		{"fd00:5359:6564:6765::3/128", "lies among the edges' own addresses fd00:5359:6564:6765::/64", ""},
		{"0.0.0.0/0", "", "covers the device overlay range 100.96.0.0/12"},
		{"100.64.0.0/10", "", "covers the device overlay range 100.96.0.0/12"},
		{"::/0", "", "covers the edge's own address fd00:5359:6564:6765::1"},
		{"fd00::/8", "", "covers the edge's own address"},
		{"100.112.0.0/12", "", ""}, // next to the overlay range
		{"2001:db8::/32", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.cidr, func(t *testing.T) {
			rt, err := r.AddRoute(ctx, model.NewRoute{Network: mpp(tc.cidr), Tunnel: "egress"})
			if tc.refused != "" {
				wantKind(t, err, model.ErrInvalid, tc.refused)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(rt.Warnings, "\n")
			if (tc.warn == "") != (got == "") || !strings.Contains(got, tc.warn) {
				t.Fatalf("warnings %q, want one with %q", got, tc.warn)
			}
		})
	}
	routes := must(r.ListRoutes(ctx, model.RouteFilter{}))(t)
	if len(routes) != 6 {
		t.Fatalf("%d routes stored, want the 6 accepted: %+v", len(routes), routes)
	}
	for _, rt := range routes {
		if rt.Warnings != nil {
			t.Fatalf("warnings stored with route %s: %q", rt.Network, rt.Warnings)
		}
	}
}

func TestTunnelSecrets(t *testing.T) {
	r := newRegistry(t)
	tun, secret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "t1"}))
	_, again, err := r.TunnelSecret(ctx, "t1")
	if err != nil || string(again) != string(secret) {
		t.Fatalf("TunnelSecret = %x, %v; want %x", again, err, secret)
	}
	if _, err := r.AuthenticateTunnel(ctx, tun.ID, secret); err != nil {
		t.Fatalf("authenticate with the right secret: %v", err)
	}
	if _, err := r.AuthenticateTunnel(ctx, tun.ID, []byte("wrong")); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("authenticate with a wrong secret: %v", err)
	}
	_, _, err = r.CreateTunnel(ctx, model.NewTunnel{Name: "t1"})
	wantKind(t, err, model.ErrConflict, "already exists")
	must(r.DeleteTunnel(ctx, tun.ID.String(), false))(t)
	if _, err := r.AuthenticateTunnel(ctx, tun.ID, secret); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("authenticate a deleted tunnel: %v", err)
	}
}

// TestConcurrentWriters races writers that conflict; the invariants must hold.
func TestConcurrentWriters(t *testing.T) {
	r := newRegistry(t)
	must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "t1"}))
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	okRoutes, okVNets := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := r.AddRoute(ctx, model.NewRoute{Network: mpp("192.0.2.0/24"), Tunnel: "t1", VNet: "default"})
			if err == nil {
				mu.Lock()
				okRoutes++
				mu.Unlock()
			} else if !errors.Is(err, model.ErrRouteExists) {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := r.CreateVNet(ctx, model.NewVNet{Name: fmt.Sprintf("v%d", i%4), IsDefault: true})
			if err == nil {
				mu.Lock()
				okVNets++
				mu.Unlock()
			} else if !errors.Is(err, model.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if okRoutes != 1 {
		t.Errorf("%d concurrent adds of one route succeeded, want 1", okRoutes)
	}
	if okVNets != 4 {
		t.Errorf("%d concurrent vnet creations succeeded, want 4 (one per name)", okVNets)
	}
	yes := true
	if defs := must(r.ListVNets(ctx, model.VNetFilter{IsDefault: &yes}))(t); len(defs) != 1 {
		t.Errorf("%d default vnets after concurrent --default adds, want 1", len(defs))
	}
}
