package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if Pin(again.Cert) != Pin(ca.Cert) {
		t.Error("a second load made a new CA")
	}
	for name, want := range map[string]os.FileMode{CAKeyFile: 0o600, CACertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
}

// TestLoadOrCreateCARefusesDamage: a CA that exists but is damaged is
// refused with an error naming the file; its key is never replaced.
func TestLoadOrCreateCARefusesDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string) error
		want   string
	}{
		{"cert missing, key kept", func(dir string) error { return os.Remove(filepath.Join(dir, CACertFile)) }, CAKeyFile},
		{"key missing", func(dir string) error { return os.Remove(filepath.Join(dir, CAKeyFile)) }, CAKeyFile},
		{"key empty", func(dir string) error { return os.WriteFile(filepath.Join(dir, CAKeyFile), nil, 0o600) }, dirName},
		{"cert truncated", func(dir string) error { return truncate(filepath.Join(dir, CACertFile)) }, dirName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreateCA(dir); err != nil {
				t.Fatal(err)
			}
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			keyBefore, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
			_, err := LoadOrCreateCA(dir)
			if err == nil {
				t.Fatal("a damaged CA was accepted")
			}
			want := tt.want
			if want == dirName {
				want = dir
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			if keyAfter, _ := os.ReadFile(filepath.Join(dir, CAKeyFile)); string(keyAfter) != string(keyBefore) {
				t.Error("the CA key was replaced")
			}
		})
	}
}

const dirName = "<dir>"

func truncate(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b[:len(b)/2], 0o644)
}

func TestIssueServerLifetime(t *testing.T) {
	ca := newCA(t)
	before := time.Now()
	cert, err := ca.IssueServer([]string{"localhost", "192.0.2.1", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.NotAfter.Sub(before); got < ServerLifetime-time.Minute || got > ServerLifetime+time.Minute {
		t.Errorf("valid for %v, want %v", got, ServerLifetime)
	}
	if len(cert.Leaf.IPAddresses) != 2 || len(cert.Leaf.DNSNames) != 1 {
		t.Errorf("covers %v and %v", cert.Leaf.IPAddresses, cert.Leaf.DNSNames)
	}
}

// TestServerCertRenews: a running TLS server serves a new certificate once
// two thirds of the old one's lifetime have passed, long before it expires.
func TestServerCertRenews(t *testing.T) {
	ca := newCA(t)
	const lifetime = 3 * time.Second
	sc, err := ca.NewServerCert([]string{"127.0.0.1"}, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	first := sc.Certificate().Leaf
	if d := sc.RenewAt().Sub(first.NotAfter); d != -lifetime/3 {
		t.Errorf("renewal %v before expiry, want %v", -d, lifetime/3)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: sc.GetCertificate, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() { sc.Run(ctx, slog.New(slog.DiscardHandler)) })
	t.Cleanup(cancel)

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if got := served(); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the server does not serve the first certificate")
	}
	deadline := first.NotAfter.Add(-lifetime / 6) // well before expiry
	for {
		got := served()
		if got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !got.NotAfter.After(first.NotAfter) {
				t.Errorf("renewed certificate expires %v, not after the old one's %v", got.NotAfter, first.NotAfter)
			}
			if time.Now().Before(first.NotAfter.Add(-lifetime / 2)) {
				t.Errorf("renewed at %v, before two thirds of its lifetime", time.Now())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving the first certificate at %v; it expires %v", time.Now(), first.NotAfter)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
