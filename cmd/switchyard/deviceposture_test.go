package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// TestDevicePostureRows checks device posture's table: one row per device,
// its reported fields, "-" and "never" for a device without a report, and
// a device picked by name or id.
func TestDevicePostureRows(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	devices := []model.Device{
		{ID: uuid.New(), Name: "laptop", User: "alice@example.com", Posture: &model.Posture{OS: "linux", OSVersion: "12",
			Kernel: "6.1.0-18-amd64", ClientVersion: "0.18.2", DiskEncrypted: true, Serial: "SN-1", Network: "office", CollectedAt: at}},
		{ID: uuid.New(), Name: "kiosk"},
	}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
	for _, d := range devices {
		row(w, postureRow(d)...)
	}
	w.Flush()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d rows, want 2:\n%s", len(lines), b.String())
	}
	if f := strings.Fields(lines[0]); strings.Join(f[1:], " ") != "laptop alice@example.com linux 12 6.1.0-18-amd64 0.18.2 true false SN-1 office 2026-12-01T09:30:00Z" {
		t.Errorf("laptop's row = %q", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f[1:], " ") != "kiosk - - - - - - - - - never" {
		t.Errorf("kiosk's row = %q", lines[1])
	}
	if got, err := selectDevices(devices, "kiosk"); err != nil || len(got) != 1 || got[0].Name != "kiosk" {
		t.Errorf("select kiosk = %v, %v", got, err)
	}
	if got, err := selectDevices(devices, devices[0].ID.String()); err != nil || len(got) != 1 || got[0].Name != "laptop" {
		t.Errorf("select by id = %v, %v", got, err)
	}
	if _, err := selectDevices(devices, "printer"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("select printer: %v, want not found", err)
	}
}
