package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/etcdtest"
)

// waitView waits until the view holds exactly want sessions per edge.
func waitView(t *testing.T, v *SessionView, within time.Duration, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := v.PerEdge()
		ok := len(got) == len(want)
		for e, n := range want {
			ok = ok && got[e] == n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions per edge = %v after %v, want %v", got, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionRegistry: every edge sees every edge's sessions; changes and
// withdrawals reach the others; a clean stop withdraws an edge's sessions at
// once, a dead edge's vanish within the lease, and a lease lost while etcd
// was away is taken anew with every record put back.
func TestSessionRegistry(t *testing.T) {
	etcd := etcdtest.StartCluster(t, 1)
	cli := client(t, etcd.Endpoints()[0])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	view := FollowSessions(ctx, cli, "/t/", nil)

	a, err := PublishSessions(ctx, cli, "/t/", "edge-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := PublishSessions(ctx, cli, "/t/", "edge-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	tunnel, vnet := uuid.New(), uuid.New()
	replica := func(edge string, active bool) model.Session {
		return model.Session{Edge: edge, Kind: model.SessionConnector, ID: uuid.New(), Tunnel: tunnel, VNet: vnet, Transport: "wireguard", Active: active}
	}
	ra := replica("edge-a", true)
	a.Set("r1", ra)
	b.Set("r2", replica("edge-b", false))
	// More records than one transaction takes.
	for i := range 300 {
		b.Set(fmt.Sprintf("d%d", i), model.Session{Edge: "edge-b", Kind: model.SessionDevice, ID: uuid.New(), VNet: vnet, Transport: "wireguard", Active: true})
	}
	waitView(t, view, 5*time.Second, map[string]int{"edge-a": 1, "edge-b": 301})

	ra.Active = false
	a.Set("r1", ra)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var active *bool
		for _, s := range view.Sessions() {
			if s.ID == ra.ID {
				active = &s.Active
			}
		}
		if active != nil && !*active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a change of the active flag did not reach the view")
		}
	}
	for i := range 100 {
		b.Remove(fmt.Sprintf("d%d", i))
	}
	waitView(t, view, 5*time.Second, map[string]int{"edge-a": 1, "edge-b": 201})
	if lost := view.Lost(); len(lost) != 0 {
		t.Fatalf("%d sessions withdrawn one by one are listed as lost with their lease", len(lost))
	}

	// A clean stop withdraws at once, well within the lease.
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitView(t, view, SessionTTL/2, map[string]int{"edge-a": 1})
	t.Logf("a clean stop withdrew 201 sessions in %v", time.Since(start).Round(time.Millisecond))
	if lost := lostPerEdge(view); lost["edge-b"] != 201 || len(lost) != 1 {
		t.Fatalf("lost with their lease: %v, want edge-b's 201", lost)
	}

	// etcd restarted: the records are there after it.
	etcd.Stop(0)
	time.Sleep(SessionTTL / 2)
	etcd.Restart(0)
	waitView(t, view, 10*time.Second, map[string]int{"edge-a": 1})

	// The lease lapses (as when etcd was away for longer than the TTL; here
	// revoked from outside): edge-a takes a new one and puts its records back.
	a.mu.Lock()
	lapsed := a.lease
	a.mu.Unlock()
	if _, err := cli.Revoke(ctx, lapsed); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		renewed := a.lease
		a.mu.Unlock()
		if renewed != lapsed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("edge-a did not take a new lease after its lease lapsed")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := cli.Get(ctx, "/t/s/edge-a/r1")
		if err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease != int64(lapsed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge-a's record was not put back under its new lease: %v, %v", resp, err)
		}
	}
	waitView(t, view, 5*time.Second, map[string]int{"edge-a": 1})
	if lost := lostPerEdge(view); lost["edge-a"] != 0 {
		t.Fatalf("lost with their lease: %v, want none of edge-a's, which wrote its records again", lost)
	}

	// A dead edge (no more keepalives, nothing withdrawn): gone within the
	// lease, and its records kept as lost.
	a.cancel()
	<-a.done
	start = time.Now()
	waitView(t, view, SessionTTL+2*time.Second, map[string]int{})
	if lost := view.Lost(); !slices.ContainsFunc(lost, func(s model.Session) bool { return s.ID == ra.ID }) {
		t.Fatalf("lost with their lease: %d records without edge-a's replica", len(lost))
	}
	t.Logf("a dead edge's sessions expired %v after its last keepalive at most", time.Since(start).Round(time.Millisecond))
}

// lostPerEdge counts the view's records lost with their lease, per edge.
func lostPerEdge(v *SessionView) map[string]int {
	n := map[string]int{}
	for _, s := range v.Lost() {
		n[s.Edge]++
	}
	return n
}
