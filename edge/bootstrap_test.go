package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/pki"
)

// TestEdgeRefusesDamagedKeys: an edge whose master key or WireGuard key is
// empty, truncated or otherwise not one key of the right length refuses to
// start, with an error naming the file, and leaves the file as it was (a
// new master key would invalidate every tunnel secret).
func TestEdgeRefusesDamagedKeys(t *testing.T) {
	b64 := func(n int, fill byte) string {
		return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(fill), n))) + "\n"
	}
	tests := []struct {
		name    string
		file    string
		content string // "" with truncate: the first half of the valid file
		trunc   bool
		want    string
	}{
		{name: "master empty", file: masterKeyFile, content: "", want: "empty"},
		{name: "master blank line", file: masterKeyFile, content: "\n", want: "empty"},
		{name: "master truncated", file: masterKeyFile, trunc: true, want: "want 32"},
		{name: "master short key", file: masterKeyFile, content: b64(16, 7), want: "16-byte key, want 32"},
		{name: "master long key", file: masterKeyFile, content: b64(64, 7), want: "64-byte key, want 32"},
		{name: "master all zero", file: masterKeyFile, content: b64(32, 0), want: "all zero"},
		{name: "master not base64", file: masterKeyFile, content: "not a key at all!\n", want: "base64"},
		{name: "master two lines", file: masterKeyFile, content: b64(32, 7) + b64(32, 8), want: "base64"},
		{name: "wireguard empty", file: wgKeyFile, content: "", want: "empty"},
		{name: "wireguard truncated", file: wgKeyFile, trunc: true, want: "want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := loadIdentity(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tt.file)
			content := []byte(tt.content)
			if tt.trunc {
				whole, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				content = whole[:24] // 18 bytes of key, still valid base64
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := Run(ctx, Config{DataDir: dir, APIListen: "127.0.0.1:0", WGListen: "127.0.0.1:0"})
			if err == nil {
				t.Fatalf("the edge started with a damaged %s", tt.file)
			}
			for _, want := range []string{path, tt.want, "will not replace it"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if got, _ := os.ReadFile(path); string(got) != string(content) {
				t.Errorf("%s was rewritten to %q", tt.file, got)
			}
		})
	}
}

// TestDataDirTightened: an existing data dir left open by the operator is
// tightened to 0700 at start; a shared (sticky) directory is refused.
func TestDataDirTightened(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o777, 0o750, 0o700} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := loadIdentity(dir); err != nil {
			t.Fatalf("data dir %v: %v", mode, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("data dir %v left at %v, want 0700", mode, fi.Mode().Perm())
		}
	}

	shared := t.TempDir()
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIdentity(shared); err == nil || !strings.Contains(err.Error(), "sticky") {
		t.Errorf("a sticky data dir: %v, want a refusal", err)
	}
	if fi, _ := os.Stat(shared); fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("the shared dir's mode changed to %v", fi.Mode())
	}
}

// TestAPICertificateRenewed: while the edge runs, its API and MASQUE
// listeners switch to a renewed certificate before the first one expires.
func TestAPICertificateRenewed(t *testing.T) {
	dir := t.TempDir()
	const lifetime = 6 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	started := make(chan string, 1) // the MASQUE address
	log := slog.New(startedHandler{slog.DiscardHandler, started})
	go func() {
		errc <- Run(ctx, Config{DataDir: dir, APIListen: "127.0.0.1:0", WGListen: "127.0.0.1:0",
			MASQUEListen: "127.0.0.1:0", Log: log, certLifetime: lifetime})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("edge: %v", err)
		}
	})

	var masqueAddr string
	select {
	case masqueAddr = <-started:
	case err := <-errc:
		errc <- err
		t.Fatalf("edge: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the edge did not start")
	}
	cfg, err := client.LoadConfig(filepath.Join(dir, client.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.API)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCertPEM([]byte(cfg.CA))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}

	api := func() (*x509.Certificate, error) {
		c, err := tls.Dial("tcp", u.Host, tlsConf)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	masque := func() (*x509.Certificate, error) {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"h3"}
		c, err := quic.DialAddr(dctx, masqueAddr, conf, nil)
		if err != nil {
			return nil, err
		}
		defer c.CloseWithError(0, "")
		return c.ConnectionState().TLS.PeerCertificates[0], nil
	}

	var first *x509.Certificate
	for deadline := time.Now().Add(10 * time.Second); first == nil; time.Sleep(20 * time.Millisecond) {
		if first, err = api(); err != nil && time.Now().After(deadline) {
			t.Fatalf("API handshake: %v", err)
		}
	}
	if got := first.NotAfter.Sub(first.NotBefore); got > lifetime+2*time.Hour {
		t.Fatalf("certificate valid for %v; the lifetime seam did not take", got)
	}
	for name, served := range map[string]func() (*x509.Certificate, error){"API": api, "MASQUE": masque} {
		for {
			cert, err := served()
			if err != nil {
				t.Fatalf("%s handshake: %v", name, err)
			}
			if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
				if !cert.NotAfter.After(first.NotAfter) {
					t.Errorf("%s: renewed certificate expires %v, not after %v", name, cert.NotAfter, first.NotAfter)
				}
				break
			}
			if time.Now().After(first.NotAfter.Add(-lifetime / 8)) {
				t.Fatalf("%s still serves the first certificate at %v; it expires %v", name, time.Now(), first.NotAfter)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// startedHandler sends the MASQUE address of the "edge started" record.
type startedHandler struct {
	slog.Handler
	started chan<- string
}

func (h startedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "edge started" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "masque" {
				h.started <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

func (h startedHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h startedHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h startedHandler) WithGroup(string) slog.Handler { return h }
