package registry

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/boltstore"
	"github.com/switchyard/switchyard/control/store/etcdstore"
	"github.com/switchyard/switchyard/control/store/memstore"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

// dnsBackends opens a store of each backend; reopen (nil for memstore)
// closes it and opens the same data again, as after a restart.
func dnsBackends(t *testing.T) map[string]func(t *testing.T) (store.Store, func() store.Store) {
	return map[string]func(t *testing.T) (store.Store, func() store.Store){
		"memstore": func(t *testing.T) (store.Store, func() store.Store) {
			s := memstore.New(memstore.Options{})
			t.Cleanup(func() { s.Close() })
			return s, nil
		},
		"boltstore": func(t *testing.T) (store.Store, func() store.Store) {
			path := filepath.Join(t.TempDir(), "switchyard.db")
			open := func() store.Store {
				s, err := boltstore.Open(path, boltstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			s := open()
			return s, func() store.Store { s.Close(); s = open(); return s }
		},
		"etcdstore": func(t *testing.T) (store.Store, func() store.Store) {
			url := etcdtest.Start(t)
			open := func() store.Store {
				s, err := etcdstore.Open(clientv3.Config{Endpoints: []string{url}}, etcdstore.Options{Prefix: "/dns/"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			s := open()
			return s, func() store.Store { s.Close(); s = open(); return s }
		},
	}
}

// TestDNSResolversEveryBackend: resolver rules and the zone, added,
// listed, refused, removed, and kept across a restart, on every backend.
func TestDNSResolversEveryBackend(t *testing.T) {
	for name, open := range dnsBackends(t) {
		t.Run(name, func(t *testing.T) {
			st, reopen := open(t)
			r, err := New(ctx, st, Options{Secrets: fixedSecrets{}})
			if err != nil {
				t.Fatal(err)
			}
			b := must(r.CreateVNet(ctx, model.NewVNet{Name: "b"}))(t)
			a := must(r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "Corp.Example.", Servers: []string{"10.1.0.53", "[2001:db8::53]:5353"}}))(t)
			if a.Domain != "corp.example" || fmt.Sprint(a.Servers) != "[10.1.0.53:53 [2001:db8::53]:5353]" || a.VNetName != "default" {
				t.Fatalf("added %+v", a)
			}
			must(r.AddDNSResolver(ctx, model.NewDNSResolver{VNet: "b", Domain: "corp.example", Servers: []string{"10.2.0.53"}}))(t)
			must(r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "lab.corp.example", Servers: []string{"10.1.9.53"}}))(t)

			_, err = r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "CORP.example", Servers: []string{"10.1.0.54"}})
			wantKind(t, err, model.ErrConflict, "virtual network default already has a resolver for corp.example")
			_, err = r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "*.corp.example", Servers: []string{"10.1.0.54"}})
			wantKind(t, err, model.ErrInvalid, "wildcard")
			_, err = r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "x.example", Servers: []string{"10.1.0.54:0"}})
			wantKind(t, err, model.ErrInvalid, "port 0")
			_, err = r.AddDNSResolver(ctx, model.NewDNSResolver{VNet: "nope", Domain: "x.example", Servers: []string{"10.1.0.54"}})
			wantKind(t, err, model.ErrNotFound, `"nope" not found`)

			if reopen != nil {
				st = reopen()
				if r, err = New(ctx, st, Options{Secrets: fixedSecrets{}}); err != nil {
					t.Fatal(err)
				}
			}
			all := must(r.ListDNSResolvers(ctx, ""))(t)
			if got := resolverList(all); got != "[b:corp.example default:corp.example default:lab.corp.example]" {
				t.Fatalf("list = %s", got)
			}
			if got := resolverList(must(r.ListDNSResolvers(ctx, "b"))(t)); got != "[b:corp.example]" {
				t.Fatalf("list --vnet b = %s", got)
			}
			if z := must(r.DNSZone(ctx))(t); z != model.DefaultDNSZone {
				t.Fatalf("zone = %q, want the default", z)
			}
			if z := must(r.SetDNSZone(ctx, "Overlay.Corp.Example"))(t); z != "overlay.corp.example" {
				t.Fatalf("set zone = %q", z)
			}
			_, err = r.SetDNSZone(ctx, "bad_zone")
			wantKind(t, err, model.ErrInvalid, `DNS zone: domain "bad_zone" is invalid`)

			_, err = r.RemoveDNSResolver(ctx, "lab.corp.example", "b")
			wantKind(t, err, model.ErrNotFound, "virtual network b has no resolver for lab.corp.example")
			must(r.RemoveDNSResolver(ctx, "LAB.corp.example", ""))(t)
			must(r.RemoveDNSResolver(ctx, a.ID.String(), ""))(t)
			_, err = r.RemoveDNSResolver(ctx, a.ID.String(), "")
			wantKind(t, err, model.ErrNotFound, "not found")
			if got := resolverList(must(r.ListDNSResolvers(ctx, ""))(t)); got != "[b:corp.example]" {
				t.Fatalf("list after removes = %s", got)
			}
			// Deleting a vnet deletes its rules.
			must(r.DeleteVNet(ctx, b.ID.String(), false))(t)
			if got := resolverList(must(r.ListDNSResolvers(ctx, ""))(t)); got != "[]" {
				t.Fatalf("list after deleting vnet b = %s", got)
			}
			if reopen != nil {
				st = reopen()
				if r, err = New(ctx, st, Options{Secrets: fixedSecrets{}}); err != nil {
					t.Fatal(err)
				}
			}
			if z := must(r.DNSZone(ctx))(t); z != "overlay.corp.example" {
				t.Fatalf("zone after restart = %q", z)
			}
		})
	}
}

func resolverList(rs []model.DNSResolver) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.VNetName+":"+r.Domain)
	}
	return fmt.Sprint(out)
}

// TestDeviceConfigDNS: a device gets its own vnet's rules, the zone and the
// edge's address, from the Registry and from Configs alike, and switching
// vnet switches the rules.
func TestDeviceConfigDNS(t *testing.T) {
	r := newRegistry(t)
	must(r.CreateVNet(ctx, model.NewVNet{Name: "b"}))(t)
	must(r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "corp.example", Servers: []string{"10.1.0.53"}}))(t)
	must(r.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "a.example", Servers: []string{"10.1.0.54:5353"}}))(t)
	must(r.AddDNSResolver(ctx, model.NewDNSResolver{VNet: "b", Domain: "corp.example", Servers: []string{"10.2.0.53"}}))(t)
	d := enrollOne(t, r)
	check := func(want string) {
		t.Helper()
		cfg := must(r.DeviceConfig(ctx, d))(t)
		cfgs := must(r.Configs(ctx))(t)
		cfg2 := must(cfgs.DeviceConfig(d))(t)
		for _, c := range []model.DeviceConfig{cfg, cfg2} {
			got := fmt.Sprintf("%v %s %s", c.DNS.Resolvers, c.DNS.Zone, c.DNS.Server)
			if got != want {
				t.Fatalf("device DNS = %s\nwant         %s", got, want)
			}
		}
	}
	check("[{a.example [10.1.0.54:5353]} {corp.example [10.1.0.53:53]}] sy.internal 100.96.0.1")
	must(r.SelectVNet(ctx, d, "b"))(t)
	check("[{corp.example [10.2.0.53:53]}] sy.internal 100.96.0.1")
	must(r.SetDNSZone(ctx, "names.example"))(t)
	check("[{corp.example [10.2.0.53:53]}] names.example 100.96.0.1")
}

// enrollOne enrolls a device and returns its id.
func enrollOne(t *testing.T, r *Registry) uuid.UUID {
	t.Helper()
	tok, secret, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := r.EnrollDevice(ctx, Credential{ID: tok.ID, Secret: secret},
		model.DeviceEnrollment{Name: "laptop-7", PublicKey: newKey()}, Credential{})
	if err != nil {
		t.Fatal(err)
	}
	if !d.IP.IsValid() || !netip.MustParsePrefix("100.96.0.0/12").Contains(d.IP) {
		t.Fatalf("device ip %s", d.IP)
	}
	return d.ID
}
