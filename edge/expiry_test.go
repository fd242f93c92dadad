package edge

import (
	"context"
	"encoding/base64"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// TestSessionExpiryCutsTraffic: a device enrolled as a signed-in user
// reaches a site until its session ends; then the edge drops its traffic
// at that moment, with nothing written to the store. A user logout cuts
// another device the same way.
func TestSessionExpiryCutsTraffic(t *testing.T) {
	// The registry's clock runs 58s behind: a session of the shortest
	// duration (1m) ends 8s after the sign-in on the edge's (wall) clock.
	const skew = 52 * time.Second
	l := newEdgeLabClock(t, func() time.Time { return time.Now().Add(-skew) })
	ctx := context.Background()
	site := l.connector(t, "site-a", "", "10.1.0.0/16")
	if _, err := l.reg.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "short", Groups: []string{"contractors"}, SessionDuration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.reg.AddEnrollmentRule(ctx, model.NewEnrollmentRule{Name: "corp", EmailDomains: []string{"example.com"}, SessionDuration: 8 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	signIn := func(email string, groups ...string) (*agentPeer, model.Device) {
		t.Helper()
		priv, err := wireguard.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub := priv.PublicKey()
		dev, _, err := l.reg.EnrollUserDevice(ctx, model.UserIdentity{Subject: email, Email: email, EmailVerified: true, Groups: groups},
			model.DeviceEnrollment{Name: "laptop", PublicKey: base64.StdEncoding.EncodeToString(pub[:])}, registry.Credential{})
		if err != nil {
			t.Fatal(err)
		}
		return startAgentPeer(t, priv, l.dp.ep.PublicKey(), l.dp.ep.Port()), dev
	}
	carol, carolDev := signIn("carol@contractor.example", "contractors")
	alice, aliceDev := signIn("alice@example.com")
	// reaches sends pings from the device's overlay address until the site
	// gets one with that source, or for d.
	reaches := func(a *agentPeer, dev model.Device, d time.Duration) bool {
		t.Helper()
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			a.send(t, ping("10.1.0.5", dev.IP.String()))
			for p := site.recv(100 * time.Millisecond); p != nil; p = site.recv(10 * time.Millisecond) {
				if netip.AddrFrom4([4]byte(p[12:16])) == dev.IP {
					return true
				}
			}
		}
		return false
	}
	for _, p := range []*agentPeer{site, carol, alice} { // nudge each into a handshake
		p.send(t, ping("100.96.0.1", "10.255.255.254"))
	}
	l.waitUp(t, 3)
	if !reaches(carol, carolDev, 2*time.Second) || !reaches(alice, aliceDev, 2*time.Second) {
		t.Fatal("the signed-in devices do not reach the site")
	}
	if left := time.Until(*carolDev.SessionExpiresAt); left < time.Second {
		t.Fatalf("the lab took too long: carol's session ends in %v", left)
	}
	rev, err := l.reg.Rev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	end := *carolDev.SessionExpiresAt // 8s from the sign-in on the edge's clock
	time.Sleep(time.Until(end) + 100*time.Millisecond)
	if reaches(carol, carolDev, time.Second) {
		t.Fatalf("carol's device still reaches the site after its session ended at %v", end)
	}
	if !reaches(alice, aliceDev, 2*time.Second) {
		t.Fatal("alice's device (a session of 8h) was cut with carol's")
	}
	if now, _ := l.reg.Rev(ctx); now != rev {
		t.Fatalf("the store moved from revision %d to %d: expiry must not need a write", rev, now)
	}
	l.dp.mu.Lock()
	_, inDir := l.dp.agents[carolDev.ID]
	l.dp.mu.Unlock()
	if inDir {
		t.Fatal("carol's device is still in the edge's directory")
	}

	// An admin logs alice out: her traffic stops too.
	if _, err := l.reg.LogoutUser(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice's device leaves the directory", 5*time.Second, func() bool {
		l.dp.mu.Lock()
		defer l.dp.mu.Unlock()
		_, ok := l.dp.agents[aliceDev.ID]
		return !ok
	})
	if reaches(alice, aliceDev, time.Second) {
		t.Fatal("alice's device still reaches the site after her logout")
	}
}
