package api_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// TestPostureAPI: a device's first posture comes with its enrollment, its
// reports replace it, the admin's device list shows it; only the device's
// credential reports; posture networks added by the admin reach the
// device's configuration long poll, and go away again.
func TestPostureAPI(t *testing.T) {
	admin, _ := newPinnedServer(t)
	ctx := context.Background()
	et, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	enroller, err := client.NewEnroller(et.Token)
	if err != nil {
		t.Fatal(err)
	}
	first := model.Posture{OS: "linux", OSVersion: "12", Kernel: "6.1.0-18-amd64", ClientVersion: "dev", CollectedAt: time.Now().UTC().Truncate(time.Second)}
	enrolled, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", DeviceType: "linux", PublicKey: wgKey(), Posture: &first})
	if err != nil {
		t.Fatal(err)
	}
	listed := func() *model.Posture {
		t.Helper()
		devices, err := admin.ListDevices(ctx, false)
		if err != nil || len(devices) != 1 {
			t.Fatalf("device list = %+v, %v", devices, err)
		}
		return devices[0].Posture
	}
	if p := listed(); p == nil || *p != first {
		t.Fatalf("posture after enrollment = %+v, want %+v", p, first)
	}
	dev, err := client.NewDevice(enrolled.Credential)
	if err != nil {
		t.Fatal(err)
	}
	next := first
	next.Firewall, next.DiskEncrypted, next.Network = true, true, "office"
	next.CollectedAt = next.CollectedAt.Add(time.Second)
	if got, err := dev.ReportPosture(ctx, next); err != nil || got != next {
		t.Fatalf("report posture = %+v, %v; want %+v", got, err, next)
	}
	if p := listed(); p == nil || *p != next {
		t.Fatalf("posture after a report = %+v, want %+v", p, next)
	}
	bad := next
	bad.CollectedAt = time.Time{}
	if _, err := dev.ReportPosture(ctx, bad); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("a report without collected_at: %v, want invalid", err)
	}
	if _, err := admin.ReportPosture(ctx, next); !errors.Is(err, model.ErrUnauthorized) {
		t.Fatalf("the admin token reporting posture: %v, want unauthorized", err)
	}

	_, tag, _, err := dev.WatchDeviceConfig(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddPostureNetwork(ctx, model.PostureNetwork{Name: "office", Prefix: "198.51.100.0/24"}); err != nil {
		t.Fatal(err)
	}
	cfg, tag, changed, err := dev.WatchDeviceConfig(ctx, tag, 5*time.Second)
	if err != nil || !changed || len(cfg.PostureNetworks) != 1 || cfg.PostureNetworks[0] != (model.PostureNetwork{Name: "office", Prefix: "198.51.100.0/24"}) {
		t.Fatalf("config after adding a posture network: %+v changed=%v err=%v", cfg.PostureNetworks, changed, err)
	}
	if _, err := admin.AddPostureNetwork(ctx, model.PostureNetwork{Name: "office", Prefix: "192.0.2.0/24"}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("adding a taken name: %v, want conflict", err)
	}
	if nets, err := admin.ListPostureNetworks(ctx); err != nil || len(nets) != 1 || nets[0].Name != "office" {
		t.Fatalf("posture networks = %+v, %v", nets, err)
	}
	if _, err := admin.RemovePostureNetwork(ctx, "office"); err != nil {
		t.Fatal(err)
	}
	cfg, _, changed, err = dev.WatchDeviceConfig(ctx, tag, 5*time.Second)
	if err != nil || !changed || cfg.PostureNetworks != nil {
		t.Fatalf("config after removing it: %+v changed=%v err=%v", cfg.PostureNetworks, changed, err)
	}
	if nets, err := admin.ListPostureNetworks(ctx); err != nil || nets == nil || len(nets) != 0 {
		t.Fatalf("posture networks after removing the last = %#v, %v; want an empty list", nets, err)
	}
	if _, err := admin.RemovePostureNetwork(ctx, "office"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("removing it again: %v, want not found", err)
	}
}
