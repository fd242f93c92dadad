package registry

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// TestConfigsAnswerAsTheRegistry: after every step of a history that
// touches each input of a configuration (routes added and deleted, a
// tunnel deleted, virtual networks selected, deleted and made the default,
// devices revoked, the split tunnel changed, records that do not decode),
// Configs computes for every connector and device, and for unknown ids,
// the same configuration or the same error as ConnectorConfig and
// DeviceConfig reading the store.
func TestConfigsAnswerAsTheRegistry(t *testing.T) {
	r := newRegistry(t)
	var connectors, devices []uuid.UUID
	connectors = append(connectors, uuid.New()) // never enrolled
	devices = append(devices, uuid.New())
	tok, tokSecret := mustPair(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	enroll := func(t *testing.T, tunnel string) {
		tun, secret := must2(t)(r.TunnelSecret(ctx, tunnel))
		c := must(r.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: newKey(), Hostname: "gw-" + tunnel}))(t)
		connectors = append(connectors, c.ID)
	}
	device := func(t *testing.T, name string) model.Device {
		d, _ := mustPair(r.EnrollDevice(ctx, Credential{tok.ID, tokSecret}, model.DeviceEnrollment{Name: name, PublicKey: newKey()}, Credential{}))(t)
		devices = append(devices, d.ID)
		return d
	}
	route := func(t *testing.T, network, tunnel, vnet string) model.Route {
		return must(r.AddRoute(ctx, model.NewRoute{Network: mpp(network), Tunnel: tunnel, VNet: vnet}))(t)
	}
	damage := func(t *testing.T, coll, key string) {
		if _, err := r.st.Update(ctx, func(tx store.Tx) error { return tx.Put(coll, key, []byte("{not json")) }); err != nil {
			t.Fatal(err)
		}
	}
	var laptop, phone model.Device
	var gone model.Route

	for _, step := range []struct {
		name string
		do   func(t *testing.T)
	}{
		{"empty", func(t *testing.T) {}},
		{"tunnels and connectors", func(t *testing.T) {
			for _, name := range []string{"fra", "syd", "idle"} {
				must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: name}))
				enroll(t, name)
			}
			enroll(t, "fra") // a second replica
		}},
		{"routes", func(t *testing.T) {
			route(t, "192.0.2.0/24", "fra", "")
			route(t, "2001:db8:1::/48", "fra", "")
			route(t, "198.51.100.0/24", "syd", "")
			gone = route(t, "203.0.113.0/24", "syd", "")
		}},
		{"a route that covers the overlay range", func(t *testing.T) { route(t, "100.0.0.0/8", "syd", "") }},
		{"another virtual network", func(t *testing.T) {
			must(r.CreateVNet(ctx, model.NewVNet{Name: "lab"}))(t)
			must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "far"}))
			enroll(t, "far")
			route(t, "192.0.2.0/24", "far", "lab")
			route(t, "2001:db8:2::/48", "far", "lab")
		}},
		{"devices", func(t *testing.T) {
			laptop = device(t, "laptop")
			phone = device(t, "phone")
			device(t, "tablet")
			must(r.SelectVNet(ctx, phone.ID, "lab"))(t)
		}},
		{"a route deleted", func(t *testing.T) { must(r.DeleteRoute(ctx, "", gone.ID.String()))(t) }},
		{"split tunnel changed", func(t *testing.T) {
			must(r.SetSplitMode(ctx, model.SplitInclude))(t)
			must(r.AddSplitEntry(ctx, model.SplitEntry{Address: mpp("198.51.100.0/24"), Description: "lab"}))(t)
		}},
		{"posture networks", func(t *testing.T) {
			must(r.AddPostureNetwork(ctx, model.PostureNetwork{Name: "office", Prefix: "198.51.100.0/24"}))(t)
			must(r.AddPostureNetwork(ctx, model.PostureNetwork{Name: "lab", Prefix: "2001:db8::/32"}))(t)
			must(r.RemovePostureNetwork(ctx, "lab"))(t)
		}},
		{"a device revoked", func(t *testing.T) { must(r.RevokeDevice(ctx, laptop.ID.String()))(t) }},
		{"another default", func(t *testing.T) {
			must(r.UpdateVNet(ctx, "lab", model.VNetPatch{IsDefault: ptrTo(true)}))(t)
		}},
		{"a selected virtual network deleted", func(t *testing.T) {
			must(r.UpdateVNet(ctx, "default", model.VNetPatch{IsDefault: ptrTo(true)}))(t)
			must(r.DeleteVNet(ctx, "lab", true))(t)
		}},
		{"a tunnel deleted", func(t *testing.T) { must(r.DeleteTunnel(ctx, "syd", true))(t) }},
		{"a connector that does not decode", func(t *testing.T) { damage(t, collConnectors, connectors[1].String()) }},
		{"a device that does not decode", func(t *testing.T) { damage(t, collDevices, devices[2].String()) }},
		{"posture networks that do not decode", func(t *testing.T) { damage(t, collSettings, keyPostureNetworks) }},
		{"a split tunnel setting that does not decode", func(t *testing.T) { damage(t, collSettings, keySplitTunnel) }},
		{"a route that does not decode", func(t *testing.T) { damage(t, collRoutes, uuid.NewString()) }},
		{"a virtual network that does not decode", func(t *testing.T) { damage(t, collVNets, uuid.NewString()) }},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.do(t)
			cfgs := must(r.Configs(ctx))(t)
			if rev := must(r.Rev(ctx))(t); cfgs.Rev != rev {
				t.Errorf("Configs read at revision %d, the store is at %d", cfgs.Rev, rev)
			}
			for _, id := range connectors {
				want, wantErr := r.ConnectorConfig(ctx, id)
				got, err := cfgs.ConnectorConfig(id)
				sameAnswer(t, "connector "+id.String(), want, wantErr, got, err)
			}
			for _, id := range devices {
				want, wantErr := r.DeviceConfig(ctx, id)
				got, err := cfgs.DeviceConfig(id)
				sameAnswer(t, "device "+id.String(), want, wantErr, got, err)
			}
		})
	}
}

// sameAnswer fails the test unless two answers are the same value (the
// same JSON, nil and empty lists apart) and the same error.
func sameAnswer[T any](t *testing.T, what string, want T, wantErr error, got T, err error) {
	t.Helper()
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || (err != nil) != (wantErr != nil) ||
		(err != nil && model.AsError(err).Kind != model.AsError(wantErr).Kind) {
		t.Errorf("%s: error %v, want %v", what, err, wantErr)
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if string(gj) != string(wj) || !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}
