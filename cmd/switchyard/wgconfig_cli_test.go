package main

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// TestWGConfigCommand drives device wg-config through the real binary: a
// generated key whose public half is what the edge registered, a device's
// own key kept out of the config, -o with mode 0600, --qr, and refusals (a
// bad key, a name taken, an unknown vnet) that register nothing.
func TestWGConfigCommand(t *testing.T) {
	dir := t.TempDir()
	startEdge(t, dir)
	mustCLI(t, dir, "tunnel", "vnet", "add", "lab")

	conf := mustCLI(t, dir, "device", "wg-config", "--name", "phone", "--vnet", "lab", "--user", "ann@example.com")
	priv := regexp.MustCompile(`(?m)^PrivateKey = (\S+)$`).FindStringSubmatch(conf)
	if priv == nil {
		t.Fatalf("no private key in the generated config:\n%s", conf)
	}
	k, err := wireguard.ParsePrivateKey(priv[1])
	if err != nil {
		t.Fatal(err)
	}
	devices := jsonCLI[[]model.Device](t, dir, "device list")
	if len(devices) != 1 || devices[0].Key != k.PublicKey().String() || devices[0].DeviceType != model.DeviceTypeWireGuard || devices[0].User != "ann@example.com" {
		t.Fatalf("registered %+v; want phone with the config's public key", devices)
	}
	for _, want := range []string{"Address = " + devices[0].IP.String() + "/32", "Endpoint = 127.0.0.1:51820", "PersistentKeepalive = 25", "virtual network lab"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}

	// The device's own key: the config holds no private key; -o writes 0600.
	own := newWGKey()
	out := filepath.Join(dir, "wgd0.conf")
	if stdout := mustCLI(t, dir, "device", "wg-config", "--name", "router", "--public-key", own, "-o", out); stdout != "" {
		t.Fatalf("-o printed the config too:\n%s", stdout)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, mode %v; want 0600", err, fi.Mode())
	}
	body, _ := os.ReadFile(out)
	if strings.Contains(string(body), "PrivateKey =") || !strings.Contains(string(body), own) {
		t.Fatalf("config for a device that keeps its key:\n%s", body)
	}

	qr := mustCLI(t, dir, "device", "wg-config", "--name", "tablet", "--qr")
	if strings.Contains(qr, "PrivateKey") || !strings.Contains(qr, "█") || strings.Count(qr, "\n") < 20 {
		t.Fatalf("--qr printed:\n%s", qr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"key not base64", []string{"--name", "a", "--public-key", "not-a-key"}, 2, `public key "not-a-key" is not a base64 WireGuard key (32 bytes)`},
		{"key 16 bytes", []string{"--name", "a", "--public-key", base64.StdEncoding.EncodeToString(make([]byte, 16))}, 2, "is not a base64 WireGuard key (32 bytes)"},
		{"name taken", []string{"--name", "phone"}, 4, `the name "phone" is taken by device ` + devices[0].ID.String()},
		{"unknown vnet", []string{"--name", "a", "--vnet", "nope"}, 3, `virtual network "nope" not found`},
		{"key in use", []string{"--name", "a", "--public-key", own}, 4, "is already enrolled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := run(t, dir, append([]string{"device", "wg-config"}, tc.args...)...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(stderr, tc.msg) || stdout != "" {
				t.Fatalf("err %v, stderr %q, stdout %q; want exit %d with %q", err, stderr, stdout, tc.code, tc.msg)
			}
		})
	}
	if n := len(jsonCLI[[]model.Device](t, dir, "device list")); n != 3 {
		t.Fatalf("%d devices after the refusals, want the 3 registered", n)
	}
}
