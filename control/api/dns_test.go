package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

func wantAPIError(t *testing.T, err error, kind model.Kind, contains string) {
	t.Helper()
	var e *model.Error
	if !errors.As(err, &e) || e.Kind != kind || !strings.Contains(e.Message, contains) {
		t.Fatalf("got %#v, want kind %v and a message saying %q", err, kind, contains)
	}
}

func TestDNSEndpoints(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	if _, err := admin.CreateVNet(ctx, model.NewVNet{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	res, err := admin.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "Corp.Example", Servers: []string{"10.1.0.53", "10.1.0.54:5353"}})
	if err != nil || res.Domain != "corp.example" || fmt.Sprint(res.Servers) != "[10.1.0.53:53 10.1.0.54:5353]" || res.VNetName != "default" {
		t.Fatalf("add: %+v, %v", res, err)
	}
	if _, err := admin.AddDNSResolver(ctx, model.NewDNSResolver{VNet: "lab", Domain: "corp.example", Servers: []string{"10.2.0.53"}}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "corp.example", Servers: []string{"10.1.0.55"}})
	wantAPIError(t, err, model.KindConflict, "already has a resolver for corp.example")
	_, err = admin.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "bad..example", Servers: []string{"10.1.0.55"}})
	wantAPIError(t, err, model.KindInvalid, `domain "bad..example" is invalid`)
	_, err = admin.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "x.example", Servers: []string{"ns.x.example"}})
	wantAPIError(t, err, model.KindInvalid, `DNS server "ns.x.example" is not an IP address`)

	all, err := admin.ListDNSResolvers(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %+v, %v", all, err)
	}
	lab, err := admin.ListDNSResolvers(ctx, "lab")
	if err != nil || len(lab) != 1 || lab[0].VNetName != "lab" {
		t.Fatalf("list --vnet lab: %+v, %v", lab, err)
	}
	if got, err := admin.RemoveDNSResolver(ctx, "corp.example", "lab"); err != nil || got.ID != lab[0].ID {
		t.Fatalf("remove by domain: %+v, %v", got, err)
	}
	if got, err := admin.RemoveDNSResolver(ctx, res.ID.String(), ""); err != nil || got.Domain != "corp.example" {
		t.Fatalf("remove by id: %+v, %v", got, err)
	}
	_, err = admin.RemoveDNSResolver(ctx, "corp.example", "")
	wantAPIError(t, err, model.KindNotFound, "virtual network default has no resolver for corp.example")
	if all, err := admin.ListDNSResolvers(ctx, ""); err != nil || all == nil || len(all) != 0 {
		t.Fatalf("list after removing all: %#v, %v (want an empty list)", all, err)
	}

	if z, err := admin.DNSZone(ctx); err != nil || z != "sy.internal" {
		t.Fatalf("zone: %q, %v", z, err)
	}
	if z, err := admin.SetDNSZone(ctx, "Names.Corp.Example."); err != nil || z != "names.corp.example" {
		t.Fatalf("set zone: %q, %v", z, err)
	}
	_, err = admin.SetDNSZone(ctx, "*.corp.example")
	wantAPIError(t, err, model.KindInvalid, "DNS zone: domain")
}

// TestDNSChangesWakeDeviceConfig: a resolver added in a device's vnet, a
// zone change and the device switching vnet each end its configuration
// long poll with the new DNS part; a rule added in another vnet changes
// nothing for it.
func TestDNSChangesWakeDeviceConfig(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	if _, err := admin.CreateVNet(ctx, model.NewVNet{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	enroller, err := client.NewEnroller(et.Token)
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop-7", PublicKey: wgKey()})
	if err != nil {
		t.Fatal(err)
	}
	if d := enrolled.Config.DNS; d.Zone != "sy.internal" || d.Server.String() != "100.96.0.1" || len(d.Resolvers) != 0 {
		t.Fatalf("enrolled config DNS = %+v", d)
	}
	dev, err := client.NewDevice(enrolled.Credential)
	if err != nil {
		t.Fatal(err)
	}
	_, tag, _, err := dev.WatchDeviceConfig(ctx, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// wake runs change while a poll with the current tag waits, and
	// returns the configuration the poll answers with.
	wake := func(what string, change func() error) model.DeviceConfig {
		t.Helper()
		type answer struct {
			cfg     model.DeviceConfig
			tag     string
			changed bool
			err     error
		}
		ch := make(chan answer, 1)
		go func() {
			cfg, tag, changed, err := dev.WatchDeviceConfig(ctx, tag, 10*time.Second)
			ch <- answer{cfg, tag, changed, err}
		}()
		time.Sleep(200 * time.Millisecond) // the poll waits
		start := time.Now()
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		a := <-ch
		if a.err != nil || !a.changed {
			t.Fatalf("%s: poll answered changed=%v err=%v", what, a.changed, a.err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%s: the poll woke after %v", what, took)
		}
		tag = a.tag
		return a.cfg
	}
	cfg := wake("add a resolver", func() error {
		_, err := admin.AddDNSResolver(ctx, model.NewDNSResolver{Domain: "corp.example", Servers: []string{"10.1.0.53"}})
		return err
	})
	if got := fmt.Sprint(cfg.DNS.Resolvers); got != "[{corp.example [10.1.0.53:53]}]" {
		t.Fatalf("resolvers after add = %s", got)
	}
	if _, err := admin.AddDNSResolver(ctx, model.NewDNSResolver{VNet: "lab", Domain: "lab.example", Servers: []string{"10.2.0.53"}}); err != nil {
		t.Fatal(err)
	}
	if cfg, _, changed, err := dev.WatchDeviceConfig(ctx, tag, time.Second); err != nil || changed {
		t.Fatalf("a rule in another vnet changed the device's config: %+v, %v", cfg.DNS, err)
	}
	cfg = wake("switch vnet", func() error { _, err := dev.SelectVNet(ctx, "lab"); return err })
	if got := fmt.Sprint(cfg.DNS.Resolvers); got != "[{lab.example [10.2.0.53:53]}]" {
		t.Fatalf("resolvers after switching to lab = %s", got)
	}
	cfg = wake("set the zone", func() error { _, err := admin.SetDNSZone(ctx, "names.example"); return err })
	if cfg.DNS.Zone != "names.example" {
		t.Fatalf("zone after set = %q", cfg.DNS.Zone)
	}
	cfg = wake("remove a resolver", func() error { _, err := admin.RemoveDNSResolver(ctx, "lab.example", "lab"); return err })
	if len(cfg.DNS.Resolvers) != 0 {
		t.Fatalf("resolvers after remove = %v", cfg.DNS.Resolvers)
	}
}
