package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// TestReportPosture: a device's report lands on its record (and an
// enrollment's first report too), bad reports are refused and leave the
// record alone, and a revoked device cannot report.
func TestReportPosture(t *testing.T) {
	r := newRegistry(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	tok, secret := mustPair(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	first := model.Posture{OS: "linux", OSVersion: "12", Kernel: "6.1.0-18-amd64", ClientVersion: "v1.2.3", CollectedAt: now.Add(-time.Second)}
	d, _ := mustPair(r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: newKey(), Posture: &first}, Credential{}))(t)
	posture := func() *model.Posture {
		t.Helper()
		for _, o := range must(r.ListDevices(ctx, true))(t) {
			if o.ID == d.ID {
				return o.Posture
			}
		}
		t.Fatalf("device %s is not listed", d.ID)
		return nil
	}
	if p := posture(); p == nil || *p != first {
		t.Fatalf("posture after enrollment = %+v, want %+v", p, first)
	}

	next := first
	next.DiskEncrypted, next.Firewall, next.Serial, next.Network = true, true, "PF1A2B3C", "office"
	next.CollectedAt = now.In(time.FixedZone("CET", 3600))
	got := must(r.ReportPosture(ctx, d.ID, next))(t)
	if p := posture(); p == nil || *p != got || !got.Firewall || got.CollectedAt.Location() != time.UTC || !got.CollectedAt.Equal(now) {
		t.Fatalf("posture after a report = %+v (returned %+v), want %+v in UTC", p, got, next)
	}

	for _, c := range []struct {
		name string
		edit func(*model.Posture)
		want string
	}{
		{"no collection time", func(p *model.Posture) { p.CollectedAt = time.Time{} }, "collected_at is missing"},
		{"from the future", func(p *model.Posture) { p.CollectedAt = now.Add(time.Hour) }, "in the future"},
		{"a day old", func(p *model.Posture) { p.CollectedAt = now.Add(-25 * time.Hour) }, "old"},
		{"a long kernel", func(p *model.Posture) { p.Kernel = strings.Repeat("6", 300) }, "posture kernel"},
		{"a control character", func(p *model.Posture) { p.Serial = "PF1\n2" }, "posture serial"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := next
			c.edit(&bad)
			_, err := r.ReportPosture(ctx, d.ID, bad)
			wantKind(t, err, model.ErrInvalid, c.want)
			if p := posture(); *p != got {
				t.Fatalf("a refused report changed the posture to %+v", p)
			}
		})
	}
	t.Run("enrollment with a bad report", func(t *testing.T) {
		bad := first
		bad.CollectedAt = time.Time{}
		_, _, err := r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "phone", PublicKey: newKey(), Posture: &bad}, Credential{})
		wantKind(t, err, model.ErrInvalid, "collected_at")
	})
	t.Run("unknown or revoked", func(t *testing.T) {
		_, err := r.ReportPosture(ctx, uuid.New(), next)
		wantKind(t, err, model.ErrUnauthorized, "revoked or unknown")
		must(r.RevokeDevice(ctx, d.ID.String()))(t)
		_, err = r.ReportPosture(ctx, d.ID, next)
		wantKind(t, err, model.ErrUnauthorized, "revoked or unknown")
	})
}

// TestPostureNetworks: networks are added in order (prefixes canonical),
// reach every device's configuration, refuse duplicates and bad input, and
// go away again.
func TestPostureNetworks(t *testing.T) {
	r := newRegistry(t)
	tok, secret := mustPair(r.CreateEnrollToken(ctx, model.NewEnrollToken{}))(t)
	d, _ := mustPair(r.EnrollDevice(ctx, Credential{tok.ID, secret}, model.DeviceEnrollment{Name: "laptop", PublicKey: newKey()}, Credential{}))(t)
	if cfg := must(r.DeviceConfig(ctx, d.ID))(t); cfg.PostureNetworks != nil {
		t.Fatalf("posture networks before any = %+v", cfg.PostureNetworks)
	}
	office := must(r.AddPostureNetwork(ctx, model.PostureNetwork{Name: "office", Prefix: " 198.51.100.0/24"}))(t)
	lab := must(r.AddPostureNetwork(ctx, model.PostureNetwork{Name: "lab", Prefix: "2001:db8:1::/48"}))(t)
	want := []model.PostureNetwork{{Name: "office", Prefix: "198.51.100.0/24"}, {Name: "lab", Prefix: "2001:db8:1::/48"}}
	if office != want[0] || lab != want[1] {
		t.Fatalf("added %+v and %+v, want %+v", office, lab, want)
	}
	for _, got := range [][]model.PostureNetwork{must(r.PostureNetworks(ctx))(t), must(r.DeviceConfig(ctx, d.ID))(t).PostureNetworks} {
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("posture networks = %+v, want %+v", got, want)
		}
	}
	for _, c := range []struct {
		name string
		n    model.PostureNetwork
		kind *model.Error
		want string
	}{
		{"a taken name", model.PostureNetwork{Name: "office", Prefix: "192.0.2.0/24"}, model.ErrConflict, "already exists"},
		{"no name", model.PostureNetwork{Prefix: "192.0.2.0/24"}, model.ErrInvalid, "posture network"},
		{"not a prefix", model.PostureNetwork{Name: "home", Prefix: "192.0.2.1"}, model.ErrInvalid, "not a valid CIDR"},
		{"not canonical", model.PostureNetwork{Name: "home", Prefix: "192.0.2.1/24"}, model.ErrInvalid, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.AddPostureNetwork(ctx, c.n)
			wantKind(t, err, c.kind, c.want)
		})
	}
	if gone := must(r.RemovePostureNetwork(ctx, "office"))(t); gone != want[0] {
		t.Fatalf("removed %+v, want %+v", gone, want[0])
	}
	_, err := r.RemovePostureNetwork(ctx, "office")
	wantKind(t, err, model.ErrNotFound, `posture network "office" not found`)
	must(r.RemovePostureNetwork(ctx, "lab"))(t)
	if got := must(r.PostureNetworks(ctx))(t); got != nil {
		t.Fatalf("posture networks after removing both = %+v", got)
	}
	if cfg := must(r.DeviceConfig(ctx, d.ID))(t); cfg.PostureNetworks != nil {
		t.Fatalf("device posture networks after removing both = %+v", cfg.PostureNetworks)
	}
}
