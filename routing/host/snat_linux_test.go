//go:build linux

package host_test

import (
	"testing"

	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/routing/host"
)

// TestSNAT routes A -> R -> B where B has no route back to A: only with SNAT
// on R's interface towards A do A's connections to B work, and B then sees
// R's address instead of A's.
func TestSNAT(t *testing.T) {
	l := lab.New(t)
	a, r, b := l.NS("a"), l.NS("r"), l.NS("b")
	_, rFromA := l.Link(a, "192.0.2.1/24", r, "192.0.2.2/24")
	l.Link(r, "198.51.100.1/24", b, "198.51.100.2/24")
	if err := a.Route("add", "default", "via", "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	b.Echo(t, "198.51.100.2:7000")

	if _, err := a.TCPEcho("198.51.100.2:7000"); err == nil {
		t.Fatal("B answered A without SNAT, though it has no route back")
	}
	if err := r.Do(func() error { return host.EnableSNAT(rFromA) }); err != nil {
		t.Fatal(err)
	}
	// Enabling twice (a restart) replaces the rule rather than adding a second.
	if err := r.Do(func() error { return host.EnableSNAT(rFromA) }); err != nil {
		t.Fatal(err)
	}
	peer, err := a.TCPEcho("198.51.100.2:7000")
	if err != nil {
		t.Fatalf("with SNAT: %v", err)
	}
	if peer.Addr().String() != "198.51.100.1" {
		t.Fatalf("with SNAT B saw %s, want R's 198.51.100.1", peer.Addr())
	}
	if err := r.Do(func() error { return host.DisableSNAT(rFromA) }); err != nil {
		t.Fatal(err)
	}
	if err := r.Do(func() error { return host.DisableSNAT(rFromA) }); err != nil {
		t.Fatalf("disabling twice: %v", err)
	}
	if _, err := a.TCPEcho("198.51.100.2:7000"); err == nil {
		t.Fatal("B still answered A after SNAT was disabled")
	}
}
