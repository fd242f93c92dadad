package web_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// TestCreateTunnelShowsTheCommand creates a tunnel in the browser and checks
// that the page shows the command with the tunnel's own token, that the
// live table picks the tunnel up, that failing over a tunnel with no replica
// shows the API's refusal, and that deleting takes a confirmation.
func TestCreateTunnelShowsTheCommand(t *testing.T) {
	l := startLab(t)
	l.signIn(t)
	ctx := context.Background()
	l.run(t, "create a tunnel",
		chromedp.Navigate(l.url+"/tunnels"),
		chromedp.WaitVisible(chromedp.CSS(`#tunnel-name`)),
		chromedp.SendKeys(chromedp.CSS(`#tunnel-name`), "site-a"),
		chromedp.Click(chromedp.CSS(`#create-tunnel`)),
		chromedp.WaitVisible(chromedp.CSS(`#run-command`)),
	)
	tok, err := l.admin.TunnelToken(ctx, "site-a")
	if err != nil {
		t.Fatalf("the tunnel the page created: %v", err)
	}
	if got, want := l.text(t, "#run-command"), "switchyard connector run --token "+tok.Token; got != want {
		t.Fatalf("the page shows %q, want %q", got, want)
	}
	if got := l.text(t, "#systemd-command"); !strings.Contains(got, "SWITCHYARD_TUNNEL_TOKEN="+tok.Token) ||
		!strings.Contains(got, "/etc/switchyard/connector.env") || !strings.Contains(got, "systemctl enable --now switchyard-connector") {
		t.Fatalf("the systemd lines %q do not install the token where the unit reads it", got)
	}
	// The live table learns of the new tunnel without a reload.
	l.run(t, "the tunnel appears in the table",
		chromedp.WaitVisible(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"]`)),
	)
	if got := l.text(t, `#tunnels tr[data-tunnel="site-a"] td:nth-child(2)`); got != "down" {
		t.Fatalf("a tunnel without connectors shows %q, want down", got)
	}
	l.shot(t, "tunnel-created")

	l.run(t, "fail over a tunnel with no replica",
		chromedp.Click(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"] button.failover`)),
		chromedp.WaitVisible(chromedp.CSS(`#errors .error`)),
	)
	if got := l.text(t, "#errors .error"); !strings.Contains(got, "has no replica up") {
		t.Fatalf("failover without a replica showed %q", got)
	}

	// Connect shows an existing tunnel's command again.
	l.run(t, "connect", chromedp.Click(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"] a.connect`)),
		chromedp.WaitVisible(chromedp.CSS(`#run-command`)))
	if got, want := l.text(t, "#run-command"), "switchyard connector run --token "+tok.Token; got != want {
		t.Fatalf("Connect shows %q, want %q", got, want)
	}
	l.run(t, "back", chromedp.Navigate(l.url+"/tunnels"), chromedp.WaitVisible(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"]`)))

	// Delete: the link only asks; the tunnel goes on the second click.
	l.run(t, "ask to delete", chromedp.Click(chromedp.CSS(`#tunnels tr[data-tunnel="site-a"] a.delete`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-delete`)))
	if _, err := l.admin.GetTunnel(ctx, "site-a"); err != nil {
		t.Fatalf("asking to delete deleted the tunnel: %v", err)
	}
	l.shot(t, "tunnel-delete-confirm")
	l.run(t, "confirm the delete", chromedp.Click(chromedp.CSS(`#confirm-delete`)),
		chromedp.WaitVisible(chromedp.CSS(`#tunnel-name`)))
	if ts, err := l.admin.ListTunnels(ctx, model.TunnelFilter{}); err != nil || len(ts) != 0 {
		t.Fatalf("after the delete, tunnels are %+v, %v", ts, err)
	}
	if n := get(t, l, "count rows", chromedp.Evaluate[int](`document.querySelectorAll('#tunnels tr[data-tunnel]').length`)); n != 0 {
		t.Fatalf("the deleted tunnel is still listed (%d rows)", n)
	}
}

// TestRevokeDevice enrolls a device through the API as a client would, then
// revokes it in the browser and checks what the page and the API say.
func TestRevokeDevice(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	et, err := l.admin.CreateEnrollToken(ctx, model.NewEnrollToken{Comment: "laptops", User: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	enroller, err := client.NewEnroller(et.Token)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	dev, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", DeviceType: "linux", OSVersion: "6.1",
		Version: "dev", PublicKey: base64.StdEncoding.EncodeToString(key)})
	if err != nil {
		t.Fatal(err)
	}
	l.signIn(t)
	row := `#devices tr[data-device="laptop"]`
	l.run(t, "open devices", chromedp.Navigate(l.url+"/devices"), chromedp.WaitVisible(chromedp.CSS(row)))
	if got := l.text(t, row); !strings.Contains(got, "ada@example.com") || !strings.Contains(got, dev.Device.IP.String()) || strings.Contains(got, "revoked") {
		t.Fatalf("the device's row says %q", got)
	}
	l.run(t, "ask to revoke", chromedp.Click(chromedp.CSS(row+` a.revoke`)), chromedp.WaitVisible(chromedp.CSS(`#confirm-revoke`)))
	if d := l.deviceNamed(t, "laptop"); d.Revoked() {
		t.Fatal("asking to revoke revoked the device")
	}
	l.run(t, "revoke", chromedp.Click(chromedp.CSS(`#confirm-revoke`)), chromedp.WaitVisible(chromedp.CSS(row+` td.status`)))
	if got := l.text(t, row+" td.status"); !strings.Contains(got, "revoked") {
		t.Fatalf("after revoking, the device's status says %q", got)
	}
	l.shot(t, "device-revoked")
	if d := l.deviceNamed(t, "laptop"); !d.Revoked() {
		t.Fatal("the API does not show the device revoked")
	}
	if _, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: "laptop", PublicKey: base64.StdEncoding.EncodeToString(key)}); err == nil {
		t.Fatal("the revoked device's key enrolled again")
	}
	// After a reload the revoked device is hidden, until the toggle shows it.
	l.run(t, "reload", chromedp.Navigate(l.url+"/devices"), chromedp.WaitVisible(chromedp.CSS(`#toggle-revoked`)))
	if n := get(t, l, "count rows", chromedp.Evaluate[int](`document.querySelectorAll('#devices tr[data-device]').length`)); n != 0 {
		t.Fatalf("the device list hides no revoked device: %d rows", n)
	}
	l.run(t, "show revoked", chromedp.Click(chromedp.CSS(`#toggle-revoked`)), chromedp.WaitVisible(chromedp.CSS(row)))
	if got := l.text(t, row+" td.status"); !strings.Contains(got, "revoked") {
		t.Fatalf("with revoked shown, the device's status says %q", got)
	}
}

// deviceNamed is the device called name, as the API lists it.
func (l *lab) deviceNamed(t *testing.T, name string) model.Device {
	t.Helper()
	ds, err := l.admin.ListDevices(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no device %q in %+v", name, ds)
	return model.Device{}
}

// TestVNets adds a virtual network, is refused a second one of the same
// name with the API's message, and makes the new one the default.
func TestVNets(t *testing.T) {
	l := startLab(t)
	l.signIn(t)
	add := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(chromedp.CSS(`#vnet-name`), name),
			chromedp.Click(chromedp.CSS(`#add-vnet-button`)),
		)
	}
	l.run(t, "add a vnet", chromedp.Navigate(l.url+"/vnets"), chromedp.WaitVisible(chromedp.CSS(`#vnet-name`)),
		add("staging"), chromedp.WaitVisible(chromedp.CSS(`#vnets tr[data-vnet="staging"]`)))
	l.run(t, "add it again", add("staging"), chromedp.WaitVisible(chromedp.CSS(`#errors .error`)))
	if got := l.text(t, "#errors .error"); !strings.Contains(got, `a virtual network named "staging" already exists`) {
		t.Fatalf("the duplicate vnet showed %q", got)
	}
	l.shot(t, "vnet-duplicate")
	if vs, err := l.admin.ListVNets(context.Background(), model.VNetFilter{}); err != nil || len(vs) != 2 {
		t.Fatalf("vnets after the duplicate: %+v, %v; want default and staging", vs, err)
	}
	l.run(t, "make it the default", chromedp.Click(chromedp.CSS(`#vnets tr[data-vnet="staging"] button.make-default`)),
		chromedp.WaitVisible(chromedp.CSS(`#vnets tr[data-vnet="staging"] .default-mark`)))
	if n := get(t, l, "count default marks", chromedp.Evaluate[int](`document.querySelectorAll('#vnets .default-mark').length`)); n != 1 {
		t.Fatalf("%d vnets marked default", n)
	}
	if n := get(t, l, "count errors", chromedp.Evaluate[int](`document.querySelectorAll('#errors .error').length`)); n != 0 {
		t.Fatalf("the error stayed after a change that worked (%d shown)", n)
	}
	d, err := l.admin.ListVNets(context.Background(), model.VNetFilter{IsDefault: ptr(true)})
	if err != nil || len(d) != 1 || d[0].Name != "staging" {
		t.Fatalf("the default vnet is %+v, %v", d, err)
	}
	// Rename one, then delete it: the first click only asks.
	l.run(t, "add and rename", add("lab"), chromedp.WaitVisible(chromedp.CSS(`#vnets tr[data-vnet="lab"]`)),
		chromedp.SetValue(chromedp.CSS(`#vnets tr[data-vnet="lab"] form.rename input[name=name]`), "qa"),
		chromedp.Click(chromedp.CSS(`#vnets tr[data-vnet="lab"] form.rename button`)),
		chromedp.WaitVisible(chromedp.CSS(`#vnets tr[data-vnet="qa"]`)),
		chromedp.Click(chromedp.CSS(`#vnets tr[data-vnet="qa"] a.delete`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-delete`)))
	if vs, err := l.admin.ListVNets(context.Background(), model.VNetFilter{Name: "qa"}); err != nil || len(vs) != 1 {
		t.Fatalf("asking to delete qa: %+v, %v; want it still there", vs, err)
	}
	l.run(t, "confirm", chromedp.Click(chromedp.CSS(`#confirm-delete`)), chromedp.WaitVisible(chromedp.CSS(`#vnets tr[data-vnet="staging"]`)))
	if vs, err := l.admin.ListVNets(context.Background(), model.VNetFilter{}); err != nil || len(vs) != 2 {
		t.Fatalf("after deleting qa: %+v, %v; want default and staging", vs, err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestSplitTunnel adds and removes an entry and refuses a bad one.
func TestSplitTunnel(t *testing.T) {
	l := startLab(t)
	l.signIn(t)
	ctx := context.Background()
	row := `#entries tr[data-address="198.51.100.0/24"]`
	l.run(t, "add an entry", chromedp.Navigate(l.url+"/split-tunnel"), chromedp.WaitVisible(chromedp.CSS(`#entry-address`)),
		chromedp.SendKeys(chromedp.CSS(`#entry-address`), "198.51.100.0/24"),
		chromedp.SendKeys(chromedp.CSS(`#entry-description`), "lab"),
		chromedp.Click(chromedp.CSS(`#add-entry-button`)),
		chromedp.WaitVisible(chromedp.CSS(row)))
	st, err := l.admin.SplitTunnel(ctx)
	if err != nil || !hasEntry(st, "198.51.100.0/24") {
		t.Fatalf("split tunnel after adding: %+v, %v", st, err)
	}
	l.run(t, "a bad entry", chromedp.SendKeys(chromedp.CSS(`#entry-address`), "198.51.100.300/24"),
		chromedp.Click(chromedp.CSS(`#add-entry-button`)), chromedp.WaitVisible(chromedp.CSS(`#errors .error`)))
	if got := l.text(t, "#errors .error"); !strings.Contains(got, "198.51.100.300/24") {
		t.Fatalf("a bad address showed %q", got)
	}
	l.shot(t, "split-tunnel")
	l.run(t, "remove it", chromedp.Click(chromedp.CSS(row+` button.remove`)), chromedp.WaitNotPresent(chromedp.CSS(row)))
	if st, err = l.admin.SplitTunnel(ctx); err != nil || hasEntry(st, "198.51.100.0/24") || !hasEntry(st, "10.0.0.0/8") {
		t.Fatalf("split tunnel after removing: %+v, %v", st, err)
	}
	// Include mode starts from an empty list.
	l.run(t, "include mode", chromedp.SetValue(chromedp.CSS(`#mode`), "include"),
		chromedp.Click(chromedp.CSS(`#split-mode button`)), chromedp.WaitNotPresent(chromedp.CSS(`#entries tr[data-address="10.0.0.0/8"]`)))
	if got := l.text(t, "#current-mode"); got != "include" {
		t.Fatalf("mode shows %q", got)
	}
	if n := get(t, l, "count entries", chromedp.Evaluate[int](`document.querySelectorAll('#entries tr[data-address]').length`)); n != 0 {
		t.Fatalf("include mode starts with %d entries shown", n)
	}
	if st, err = l.admin.SplitTunnel(ctx); err != nil || st.Mode != model.SplitInclude || len(st.Entries) != 0 {
		t.Fatalf("split tunnel in include mode: %+v, %v", st, err)
	}
	// A domain goes in the same field, canonical, and is listed and removed by name.
	drow := `#entries tr[data-address="*.corp.example"]`
	l.run(t, "add a domain", chromedp.SendKeys(chromedp.CSS(`#entry-address`), "*.Corp.Example"),
		chromedp.Click(chromedp.CSS(`#add-entry-button`)), chromedp.WaitVisible(chromedp.CSS(drow)))
	if st, err = l.admin.SplitTunnel(ctx); err != nil || len(st.Entries) != 1 || st.Entries[0].Domain != "*.corp.example" {
		t.Fatalf("split tunnel after adding a domain: %+v, %v", st, err)
	}
	l.run(t, "remove the domain", chromedp.Click(chromedp.CSS(drow+` button.remove`)), chromedp.WaitNotPresent(chromedp.CSS(drow)))
	if st, err = l.admin.SplitTunnel(ctx); err != nil || len(st.Entries) != 0 {
		t.Fatalf("split tunnel after removing the domain: %+v, %v", st, err)
	}
}

func hasEntry(st model.SplitTunnel, p string) bool {
	for _, e := range st.Entries {
		if e.Address.String() == p {
			return true
		}
	}
	return false
}
