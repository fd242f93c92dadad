package registry

import (
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// forged are texts an agent could send to forge table rows or log lines.
var forged = []string{
	"gw1\x1b[2J\x1b[H",           // ANSI: clear the screen
	"13.4\r\nfake-row\tfake-col", // CR/LF and a tab: a fake table row
	"x\u202egnp.exe",             // a right-to-left override
	"\xff\xfe",                   // not UTF-8
	"a\u0085b",                   // C1 next line
}

// TestAgentTextWithControlCharactersRefused: what connectors and devices
// report about themselves is refused at enrollment when it holds control
// characters, with a clear invalid-input error.
func TestAgentTextWithControlCharactersRefused(t *testing.T) {
	r := newRegistry(t)
	tun, secret := must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "fra"}))
	tok, tokSecret, err := r.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range forged {
		_, err := r.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: newKey(), Hostname: s})
		wantKind(t, err, model.ErrInvalid, "hostname")
		_, err = r.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: newKey(), Hostname: "gw1", Version: s})
		wantKind(t, err, model.ErrInvalid, "version")
		for _, req := range []model.DeviceEnrollment{
			{Name: "laptop", PublicKey: newKey(), DeviceType: s},
			{Name: "laptop", PublicKey: newKey(), OSVersion: s},
			{Name: "laptop", PublicKey: newKey(), Version: s},
		} {
			_, _, err := r.EnrollDevice(ctx, Credential{ID: tok.ID, Secret: tokSecret}, req, Credential{})
			wantKind(t, err, model.ErrInvalid, "device")
		}
	}
	if _, err := r.EnrollConnector(ctx, tun.ID, secret, model.ConnectorEnrollment{PublicKey: newKey(), Hostname: "gw1.example.com", Version: "1.2.3 (linux/amd64)"}); err != nil {
		t.Fatalf("a plain hostname and version: %v", err)
	}
	if _, _, err := r.EnrollDevice(ctx, Credential{ID: tok.ID, Secret: tokSecret}, model.DeviceEnrollment{Name: "laptop", PublicKey: newKey(), DeviceType: "linux", OSVersion: "Debian 13 «trixie»"}, Credential{}); err != nil {
		t.Fatalf("a plain device: %v", err)
	}
}
