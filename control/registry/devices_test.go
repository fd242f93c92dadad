package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

func TestDevices(t *testing.T) {
	r := newRegistry(t)
	tok, secret, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "laptops"})
	if err != nil {
		t.Fatal(err)
	}
	key := newKey()
	enroll := func(name, key string) (model.Device, []byte, error) {
		return r.EnrollDevice(ctx, tok.ID, secret, model.DeviceEnrollment{Name: name, DeviceType: "linux", PublicKey: key})
	}
	d1, cred1, err := enroll("laptop", key)
	if err != nil {
		t.Fatal(err)
	}
	if d1.IP != netip.MustParseAddr("100.96.0.2") {
		t.Fatalf("first device got %s, want 100.96.0.2 (100.96.0.1 is the edge's)", d1.IP)
	}
	d2, _, _ := enroll("phone", newKey())
	if d2.IP != netip.MustParseAddr("100.96.0.3") {
		t.Fatalf("second device got %s", d2.IP)
	}
	again, cred2, err := enroll("laptop", key)
	if err != nil || again.ID != d1.ID || again.IP != d1.IP {
		t.Fatalf("re-enrolling the same key: %+v, %v; want the same device and address", again, err)
	}
	if _, err := r.AuthenticateDevice(ctx, d1.ID, cred1); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatal("the old credential still works after re-enrollment")
	}
	if _, err := r.AuthenticateDevice(ctx, d1.ID, cred2); err != nil {
		t.Fatalf("the new credential: %v", err)
	}
	if _, _, err := r.EnrollDevice(ctx, tok.ID, []byte("wrong"), model.DeviceEnrollment{Name: "x", PublicKey: newKey()}); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("enrolling with a wrong secret: %v", err)
	}

	must(r.CreateVNet(ctx, model.NewVNet{Name: "lab"}))(t)
	v := must(r.SelectVNet(ctx, d1.ID, "lab"))(t)
	cfg := must(r.DeviceConfig(ctx, d1.ID))(t)
	if cfg.VNetID != v.ID || cfg.IP != d1.IP || cfg.SplitTunnel.Mode != model.SplitExclude || len(cfg.SplitTunnel.Entries) != 16 {
		t.Fatalf("device config = %+v", cfg)
	}
	snap := must(r.Snapshot(ctx))(t)
	for _, d := range snap.Devices {
		want := v.ID // laptop selected lab
		if d.ID != d1.ID {
			want = must(r.GetVNet(ctx, ""))(t).ID // the others follow the default
		}
		if d.VNetID != want {
			t.Fatalf("snapshot device %s in vnet %s, want %s", d.Name, d.VNetID, want)
		}
	}
	if len(snap.Devices) != 2 {
		t.Fatalf("snapshot devices = %+v", snap.Devices)
	}
	if _, err := r.SelectVNet(ctx, d1.ID, "nope"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("selecting an unknown vnet: %v", err)
	}

	must(r.RevokeDevice(ctx, "phone"))(t)
	if _, err := r.DeviceConfig(ctx, d2.ID); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("config of a revoked device: %v", err)
	}
	if list := must(r.ListDevices(ctx, false))(t); len(list) != 1 {
		t.Fatalf("live devices after revoke: %+v", list)
	}
	// A revoked device's address is given out again.
	d3, _, _ := enroll("tablet", newKey())
	if d3.IP != d2.IP {
		t.Fatalf("new device got %s, want the revoked device's %s", d3.IP, d2.IP)
	}

	short, shortSecret, _ := r.CreateEnrollToken(ctx, model.NewEnrollToken{TTL: time.Nanosecond})
	time.Sleep(time.Millisecond)
	if _, _, err := r.EnrollDevice(ctx, short.ID, shortSecret, model.DeviceEnrollment{Name: "late", PublicKey: newKey()}); err == nil {
		t.Fatal("an expired enrollment token worked")
	}
}

func TestSplitTunnel(t *testing.T) {
	r := newRegistry(t)
	st := must(r.SplitTunnel(ctx))(t)
	if st.Mode != model.SplitExclude || len(st.Entries) != 16 {
		t.Fatalf("default split tunnel = %+v", st)
	}
	st = must(r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("198.51.100.0/24"), Description: "lab"}))(t)
	if len(st.Entries) != 17 {
		t.Fatalf("after add: %d entries", len(st.Entries))
	}
	if _, err := r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("198.51.100.0/24")}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("adding a duplicate: %v", err)
	}
	st = must(r.SetSplitMode(ctx, model.SplitInclude))(t)
	if st.Mode != model.SplitInclude || len(st.Entries) != 0 {
		t.Fatalf("include mode = %+v, want an empty list", st)
	}
	must(r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("10.1.0.0/16")}))(t)
	st = must(r.RemoveSplitEntry(ctx, "10.1.0.0/16"))(t)
	if len(st.Entries) != 0 {
		t.Fatalf("after remove: %+v", st)
	}
	if _, err := r.SetSplitMode(ctx, "sometimes"); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("bad mode: %v", err)
	}
	st = must(r.SetSplitMode(ctx, model.SplitExclude))(t)
	if fmt.Sprint(st.Entries[0].Address) != "10.0.0.0/8" {
		t.Fatalf("exclude mode reset = %+v", st)
	}
}
