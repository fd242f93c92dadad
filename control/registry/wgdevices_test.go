package registry

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// TestRegisterDevice: a stock WireGuard device gets an overlay address and
// the vnet it names; a bad key, a name taken, an unknown vnet or a key in
// use are refused with a clear error and register nothing.
func TestRegisterDevice(t *testing.T) {
	r := newRegistry(t)
	v, err := r.CreateVNet(ctx, model.NewVNet{Name: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	key := newKey()
	d, err := r.RegisterDevice(ctx, model.RegisterDevice{Name: "phone", PublicKey: key, VNet: "lab", User: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if d.IP != netip.MustParseAddr("100.96.0.2") || d.VNetID != v.ID || d.DeviceType != model.DeviceTypeWireGuard || d.User != "ann@example.com" || d.Key != key {
		t.Fatalf("registered %+v", d)
	}
	cfg, err := r.DeviceConfig(ctx, d.ID)
	if err != nil || cfg.IP != d.IP || cfg.VNetName != "lab" {
		t.Fatalf("config %+v, %v", cfg, err)
	}

	tests := []struct {
		name string
		req  model.RegisterDevice
		kind model.Kind
		msg  string
	}{
		{"key not base64", model.RegisterDevice{Name: "a", PublicKey: "not*base64"}, model.KindInvalid, "is not a base64 WireGuard key (32 bytes)"},
		{"key 31 bytes", model.RegisterDevice{Name: "a", PublicKey: base64.StdEncoding.EncodeToString(make([]byte, 31))}, model.KindInvalid, "32 bytes"},
		{"name taken", model.RegisterDevice{Name: "phone", PublicKey: newKey()}, model.KindConflict, `the name "phone" is taken by device ` + d.ID.String()},
		{"unknown vnet", model.RegisterDevice{Name: "a", PublicKey: newKey(), VNet: "nope"}, model.KindNotFound, `virtual network "nope" not found`},
		{"key in use", model.RegisterDevice{Name: "a", PublicKey: key}, model.KindConflict, "is already enrolled"},
		{"bad user", model.RegisterDevice{Name: "a", PublicKey: newKey(), User: "a\x01b"}, model.KindInvalid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.RegisterDevice(ctx, tc.req)
			if e := model.AsError(err); err == nil || e.Kind != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.kind, tc.msg)
			}
		})
	}
	if all, err := r.ListDevices(ctx, true); err != nil || len(all) != 1 {
		t.Fatalf("after refusals: %d devices (%v), want the one registered", len(all), err)
	}

	// Revoked, its name is free again but its key stays refused.
	if _, err := r.RevokeDevice(ctx, "phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterDevice(ctx, model.RegisterDevice{Name: "phone", PublicKey: key}); model.AsError(err).Kind != model.KindForbidden {
		t.Fatalf("revoked key registered again: %v", err)
	}
	if d2, err := r.RegisterDevice(ctx, model.RegisterDevice{Name: "phone", PublicKey: newKey()}); err != nil || d2.VNetID != [16]byte{} {
		t.Fatalf("a new key under the revoked device's name: %+v, %v", d2, err)
	}
}
