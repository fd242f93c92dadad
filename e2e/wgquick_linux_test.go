//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/lab"
)

// wgQuickUp brings up the wg-quick config at path (named IFNAME.conf) in ns
// with Debian's wg-quick over the userspace wireguard-go, and brings it down
// again when the test ends, also after a failure.
func wgQuickUp(t *testing.T, ns *lab.NS, path string) {
	t.Helper()
	for _, tool := range []string{"wg-quick", "wg", "wireguard-go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (Debian: wireguard-tools, wireguard-go; .ci/run installs them)", tool)
		}
	}
	env := []string{"env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go"}
	t.Cleanup(func() {
		if out, err := ns.Exec(append(env, "wg-quick", "down", path)...); err != nil && !strings.Contains(out, "is not a WireGuard interface") {
			t.Logf("wg-quick down %s: %v", path, err)
		}
	})
	out, err := ns.Exec(append(env, "wg-quick", "up", path)...)
	if err != nil {
		t.Fatalf("wg-quick up %s: %v\n%s", path, err, out)
	}
	t.Logf("wg-quick up %s:\n%s", path, out)
}

// TestStockWireGuardDevice: the config that device wg-config prints, used
// unmodified by Debian's wg-quick, makes a stock WireGuard device of the
// laptop: it reaches a site host, which sees its overlay IP, and is reached
// from it (also after a silence longer than the edge's heartbeat timeout,
// since a stock device sends no heartbeats); its packets from any other
// source are dropped as spoofed; a policy on its device id applies; device
// list shows its last handshake; device revoke cuts it off at once.
func TestStockWireGuardDevice(t *testing.T) {
	w := newWorld(t)
	w.startEdge()
	tokA := w.tunnelToken("site-a")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("split-tunnel", "mode", "include")
	w.cli("split-tunnel", "add", "10.0.0.0/8")
	w.startConnector(w.gwa, "gwa", tokA)

	ifname := fmt.Sprintf("sywg%d", os.Getpid()%100000) // wireguard-go's socket is named by it, outside the namespace
	conf := filepath.Join(w.dir, ifname+".conf")
	w.cli("device", "wg-config", "--name", "phone", "-o", conf)
	body, err := os.ReadFile(conf)
	must(t, err)
	t.Logf("%s:\n%s", conf, body)
	var devices []model.Device
	must(t, json.Unmarshal([]byte(w.cli("device", "list", "-o", "json")), &devices))
	if len(devices) != 1 || devices[0].DeviceType != model.DeviceTypeWireGuard || devices[0].LastHandshake != nil {
		t.Fatalf("after wg-config: %+v; want one wireguard device, no handshake yet", devices)
	}
	phone := devices[0]
	ip := phone.IP.String()

	wgQuickUp(t, w.laptop, conf)
	echoA := w.hosta.Echo(t, "10.1.2.3:7000")
	w.laptop.Echo(t, ip+":7000")

	t.Run("device to site sees the overlay IP", func(t *testing.T) {
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", ip)
		wantPeer(t, w.laptop, "udp", "10.1.2.3:7000", ip)
		must(t, w.laptop.Ping("10.1.2.3", 2))
		if len(echoA.Peers()) == 0 {
			t.Fatal("site A's server saw nothing")
		}
	})
	t.Run("site to device", func(t *testing.T) {
		wantPeer(t, w.hosta, "tcp", ip+":7000", "10.1.2.3")
		must(t, w.hosta.Ping(ip, 2))
	})
	t.Run("site to device after a silence: no heartbeats needed", func(t *testing.T) {
		time.Sleep(5 * time.Second) // beyond the edge's 3.5 s timeout for agents without heartbeats
		start := time.Now()
		if _, err := w.hosta.TCPEcho(ip + ":7000"); err != nil {
			t.Fatalf("site A could not reach the silent stock device at once: %v", err)
		}
		t.Logf("reached the device %v after 5 s of silence", time.Since(start).Round(time.Millisecond))
	})
	t.Run("device list shows its last handshake", func(t *testing.T) {
		var devices []model.Device
		must(t, json.Unmarshal([]byte(w.cli("device", "list", "-o", "json")), &devices))
		if len(devices) != 1 || devices[0].LastHandshake == nil || time.Since(*devices[0].LastHandshake) > time.Minute {
			t.Fatalf("device list: %+v; want phone's last handshake within the minute", devices)
		}
		if out := w.cli("device", "list"); !strings.Contains(out, "LAST HANDSHAKE") {
			t.Fatalf("device list has no LAST HANDSHAKE column:\n%s", out)
		}
	})
	t.Run("anti-spoofing on its overlay IP", func(t *testing.T) {
		before := w.spoofedDrops()
		w.laptop.MustExec(t, "ip", "addr", "add", "100.96.0.99/32", "dev", ifname)
		defer w.laptop.Exec("ip", "addr", "del", "100.96.0.99/32", "dev", ifname)
		if _, err := w.laptop.Exec("ping", "-4", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-I", "100.96.0.99", "10.1.2.3"); err == nil {
			t.Fatal("a ping from another overlay address got an answer")
		}
		if after := w.spoofedDrops(); after <= before {
			t.Fatalf("spoofed drops %v → %v; want the edge to count the foreign source", before, after)
		}
	})
	t.Run("policy by device and flow log", func(t *testing.T) {
		w.hosta.Echo(t, "10.1.2.3:7001")
		w.cli("policy", "add", "--action", "block", "--when", "device_id is "+phone.ID.String(), "--when", "dst_port is 7001", "block-phone-7001")
		wantRefused(t, w.laptop, "10.1.2.3:7001")
		wantPeer(t, w.laptop, "tcp", "10.1.2.3:7000", ip)
		var named bool
		for _, r := range w.flowRecords() {
			if r.Source.DeviceID == phone.ID && r.Source.DeviceName == "phone" && r.Src.Addr().String() == ip {
				named = true
			}
		}
		if !named {
			t.Fatal("no flow record names the stock device as its source")
		}
	})
	t.Run("revoked: cut off at once", func(t *testing.T) {
		w.cli("device", "revoke", "phone")
		revoked := time.Now()
		var tried time.Duration // when the try that failed began, after revoke returned
		must(t, eventually(2*time.Second, func() error {
			tried = time.Since(revoked)
			if _, err := w.laptop.TCPEcho("10.1.2.3:7000"); err == nil {
				return fmt.Errorf("the device still reaches site A")
			}
			return nil
		}))
		t.Logf("cut off: a connection begun %v after device revoke returned did not get through", tried.Round(time.Millisecond))
		if _, err := w.hosta.TCPEcho(ip + ":7000"); err == nil {
			t.Fatal("site A still reaches the revoked device")
		}
		if err := w.laptop.Ping("10.1.2.3", 1); err == nil {
			t.Fatal("the revoked device's ping got an answer")
		}
	})
}
