package edge

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// TestDirectoryUpdatesOnlyWhatChanged: a configuration change leaves the
// records of the sessions it does not concern alone (same record, same
// WireGuard session, same liveness), and removing an agent removes its
// record, its key at the endpoint and its indexes, in one place.
func TestDirectoryUpdatesOnlyWhatChanged(t *testing.T) {
	l := newEdgeLab(t)
	ctx := context.Background()
	a := l.connector(t, "site-a", "", "10.1.0.0/16")
	keyA := mustKey(t, a.key)

	tok, secret, err := l.reg.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := wireguard.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey()
	dev, _, err := l.reg.EnrollDevice(ctx, registry.Credential{ID: tok.ID, Secret: secret},
		model.DeviceEnrollment{Name: "laptop", PublicKey: base64.StdEncoding.EncodeToString(pub[:])}, registry.Credential{})
	if err != nil {
		t.Fatal(err)
	}
	keyD := wireguard.PublicKey(pub)

	sessionOf := func(k wireguard.PublicKey) *session {
		l.dp.mu.Lock()
		defer l.dp.mu.Unlock()
		return l.dp.byKey[k]
	}
	eventually(t, "both agents in the directory", 5*time.Second, func() bool { return sessionOf(keyA) != nil && sessionOf(keyD) != nil })
	sa, sd := sessionOf(keyA), sessionOf(keyD)
	if sa.peer.Out != sa || sa.link.(wgLink).s != l.dp.ep.Peer(keyA) || sd.peer.Device != dev.ID {
		t.Fatalf("records do not tie together: peer.Out %p (record %p), link %p (endpoint %p), device %x",
			sa.peer.Out, sa, sa.link.(wgLink).s, l.dp.ep.Peer(keyA), sd.peer.Device)
	}
	sa.lastProbe.Store(12345) // liveness that a rebuild would lose

	// An unrelated change: another tunnel and its route.
	l.tunnel(t, "site-b", "", "10.2.0.0/16")
	eventually(t, "the new route applied", 5*time.Second, func() bool {
		l.dp.mu.Lock()
		defer l.dp.mu.Unlock()
		return len(l.dp.last.Routes) == 2
	})
	if got := sessionOf(keyA); got != sa || sa.lastProbe.Load() != 12345 || sa.gone.Load() || sa.link.(wgLink).s != l.dp.ep.Peer(keyA) {
		t.Fatalf("site-a's record was rebuilt by an unrelated change: %p -> %p, lastProbe %d, gone %v", sa, got, sa.lastProbe.Load(), sa.gone.Load())
	}

	// The device is revoked: its record and its key go, nothing else.
	if _, err := l.reg.RevokeDevice(ctx, dev.ID.String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revoked device leaves the directory", 5*time.Second, func() bool { return sessionOf(keyD) == nil })
	l.dp.mu.Lock()
	_, indexed := l.dp.agents[dev.ID]
	l.dp.mu.Unlock()
	if !sd.gone.Load() || indexed || l.dp.ep.Peer(keyD) != nil || sd.peer.Up() {
		t.Fatalf("after revocation: gone %v, indexed %v, endpoint peer %v, up %v", sd.gone.Load(), indexed, l.dp.ep.Peer(keyD), sd.peer.Up())
	}
	if sessionOf(keyA) != sa {
		t.Fatal("revoking a device rebuilt a connector's record")
	}
}

func mustKey(t *testing.T, b64 string) wireguard.PublicKey {
	t.Helper()
	k, err := wireguard.ParsePublicKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
