package web

import (
	"html/template"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// TestDevicesPageShowsIdentity renders the devices page's table: the user
// with their groups, and a posture summary or "not reported".
func TestDevicesPageShowsIdentity(t *testing.T) {
	shared, _ := fs.Glob(files, "templates/partials/*.html")
	tpl, err := template.New("").Funcs(funcs).ParseFS(files, append([]string{"templates/layout.html", "templates/devices.html"}, shared...)...)
	if err != nil {
		t.Fatal(err)
	}
	v := view{Title: "Devices", Nav: "devices", Data: devicesView{VNets: map[uuid.UUID]string{}, Devices: []model.Device{
		{ID: uuid.New(), Name: "laptop", User: "alice@example.com", Groups: []string{"eng", "ops"},
			Posture: &model.Posture{OS: "linux", OSVersion: "12", Kernel: "6.1.0-18-amd64", DiskEncrypted: true, Network: "office", CollectedAt: time.Now().Add(-3 * time.Minute)}},
		{ID: uuid.New(), Name: "kiosk"},
	}}}
	var b strings.Builder
	if err := tpl.ExecuteTemplate(&b, "layout", v); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"alice@example.com<div class=\"muted groups\">eng, ops</div>",
		"linux 12, kernel 6.1.0-18-amd64, disk encrypted, firewall off, on office<div class=\"muted\">reported ",
		"<span class=\"muted\">not reported</span>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the devices page lacks %q", want)
		}
	}
}
