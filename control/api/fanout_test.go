package api_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// gatedStore is a store whose watchers receive changes only while no gate
// is held, and whose watches can be made to fail, as an etcd watch fails
// when etcd loses quorum or compacts past a slow watcher.
type gatedStore struct {
	store.Store
	gate   atomic.Pointer[chan struct{}] // held while set and open
	inject chan store.Change             // a failure for the next watcher to see
}

func (s *gatedStore) Watch(ctx context.Context, after int64) (<-chan store.Change, error) {
	in, err := s.Store.Watch(ctx, after)
	if err != nil {
		return nil, err
	}
	out := make(chan store.Change)
	go func() { // ends with ctx or the store
		defer close(out)
		for {
			var c store.Change
			select {
			case c = <-s.inject:
			case ch, ok := <-in:
				if !ok {
					return
				}
				c = ch
				if g := s.gate.Load(); g != nil {
					select {
					case <-*g:
					case <-ctx.Done():
						return
					}
				}
			case <-ctx.Done():
				return
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
			if c.Err != nil {
				return
			}
		}
	}()
	return out, nil
}

// hold holds changes back from watchers until the returned function runs.
func (s *gatedStore) hold() (release func()) {
	g := make(chan struct{})
	s.gate.Store(&g)
	var once sync.Once
	return func() { once.Do(func() { s.gate.Store(nil); close(g) }) }
}

// agentPoll is one agent's configuration long poll.
type agentPoll struct {
	name  string
	watch func(ctx context.Context, tag string, wait time.Duration) (vnet, newTag string, changed bool, err error)
	tag   string
}

// TestConfigChangeReachesEveryPoll: one change reaches 200 concurrent
// configuration long polls (connectors of several tunnels and devices),
// which the server serves from one store watch; a poll that starts after a
// change with the old ETag returns the new configuration at once, even
// while the server's watch has not delivered the change yet; a watch that
// fails answers the waiting polls 503 and recovers, and one that falls
// behind the store's history resyncs without failing them.
func TestConfigChangeReachesEveryPoll(t *testing.T) {
	const connectors, devices = 180, 20
	gs := &gatedStore{inject: make(chan store.Change)}
	admin, _, srv := newPinnedAPI(t, func(st store.Store) store.Store { gs.Store = st; return gs })
	ctx := context.Background()

	var polls []*agentPoll
	for i := range connectors / 45 {
		created, err := admin.CreateTunnel(ctx, fmt.Sprintf("site%d", i))
		if err != nil {
			t.Fatal(err)
		}
		for j := range 45 {
			agent, _, err := client.NewConnector(created.Token)
			if err != nil {
				t.Fatal(err)
			}
			enrolled, err := agent.EnrollConnector(ctx, model.ConnectorEnrollment{PublicKey: wgKey(), Hostname: fmt.Sprintf("gw%d-%d", i, j)})
			if err != nil {
				t.Fatal(err)
			}
			id := enrolled.Connector.ID
			polls = append(polls, &agentPoll{name: "connector " + id.String(), watch: func(ctx context.Context, tag string, wait time.Duration) (string, string, bool, error) {
				cfg, tag, changed, err := agent.WatchConnectorConfig(ctx, id, tag, wait)
				return cfg.VNetName, tag, changed, err
			}})
		}
	}
	tok, err := admin.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range devices {
		enroller, err := client.NewEnroller(tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		enrolled, err := enroller.EnrollDevice(ctx, model.DeviceEnrollment{Name: fmt.Sprintf("laptop%d", i), PublicKey: wgKey()})
		if err != nil {
			t.Fatal(err)
		}
		agent, err := client.NewDevice(enrolled.Credential)
		if err != nil {
			t.Fatal(err)
		}
		polls = append(polls, &agentPoll{name: "device " + enrolled.Device.ID.String(), watch: func(ctx context.Context, tag string, wait time.Duration) (string, string, bool, error) {
			cfg, tag, changed, err := agent.WatchDeviceConfig(ctx, tag, wait)
			return cfg.VNetName, tag, changed, err
		}})
	}
	// Every configuration names the default virtual network: renaming it
	// changes all of them.
	for _, p := range polls {
		vnet, tag, changed, err := p.watch(ctx, "", 0)
		if err != nil || !changed || vnet != "default" {
			t.Fatalf("%s: first fetch = %q, changed %v, %v", p.name, vnet, changed, err)
		}
		p.tag = tag
	}
	current := "default"
	rename := func(t *testing.T, to string) {
		t.Helper()
		if _, err := admin.UpdateVNet(ctx, current, model.VNetPatch{Name: &to}); err != nil {
			t.Fatal(err)
		}
		current = to
	}
	// parked starts a long poll per agent with its tag and waits until the
	// server holds them all; their answers arrive on the returned channel.
	type answer struct {
		p       *agentPoll
		vnet    string
		tag     string
		changed bool
		err     error
	}
	parked := func(t *testing.T, ps []*agentPoll) <-chan answer {
		t.Helper()
		answers := make(chan answer, len(ps))
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				vnet, tag, changed, err := p.watch(ctx, p.tag, time.Minute)
				answers <- answer{p, vnet, tag, changed, err}
			}()
		}
		t.Cleanup(wg.Wait)
		for deadline := time.Now().Add(30 * time.Second); api.WaitingPolls(srv) < len(ps); {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d long polls reached the server", api.WaitingPolls(srv), len(ps))
			}
			time.Sleep(10 * time.Millisecond)
		}
		return answers
	}
	expect := func(t *testing.T, answers <-chan answer, n int, vnet string) {
		t.Helper()
		for range n {
			a := <-answers
			if a.err != nil || !a.changed || a.vnet != vnet {
				t.Errorf("%s: %q, changed %v, %v; want the virtual network %q", a.p.name, a.vnet, a.changed, a.err, vnet)
				continue
			}
			a.p.tag = a.tag
		}
	}

	t.Run("a change reaches every poll", func(t *testing.T) {
		answers := parked(t, polls)
		rename(t, "main")
		expect(t, answers, len(polls), "main")
	})

	t.Run("a poll after the change with the old tag", func(t *testing.T) {
		old := polls[0].tag
		rename(t, "primary")
		for _, p := range []*agentPoll{polls[0], polls[len(polls)-1]} {
			vnet, tag, changed, err := p.watch(ctx, old, 10*time.Second) // a wait would end in 304
			if err != nil || !changed || vnet != "primary" {
				t.Fatalf("%s with the old tag: %q, changed %v, %v", p.name, vnet, changed, err)
			}
			p.tag = tag
		}
		// A poll that the server's watch is behind, with the tag of the
		// configuration the server last saw: it reads the store itself.
		release := gs.hold()
		defer release()
		rename(t, "core")
		vnet, tag, changed, err := polls[0].watch(ctx, polls[0].tag, 10*time.Second)
		if err != nil || !changed || vnet != "core" {
			t.Fatalf("a poll ahead of the server's watch: %q, changed %v, %v", vnet, changed, err)
		}
		polls[0].tag = tag
		release()
	})

	t.Run("the watch fails and recovers", func(t *testing.T) {
		ps := polls[:10]
		for _, p := range ps {
			_, tag, _, err := p.watch(ctx, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			p.tag = tag
		}
		answers := parked(t, ps)
		gs.inject <- store.Change{Err: fmt.Errorf("etcd watch: %w: the watch ended", store.ErrUnavailable)}
		for range ps {
			a := <-answers
			if e := model.AsError(a.err); a.err == nil || e.Kind != model.KindUnavailable {
				t.Errorf("%s with the watch failed: %v, want 503 (unavailable)", a.p.name, a.err)
			}
		}
		// A compaction is no failure: the polls wait on, then get the change.
		answers = parked(t, ps)
		gs.inject <- store.Change{Err: store.ErrCompacted}
		rename(t, "backbone")
		expect(t, answers, len(ps), "backbone")
	})
}
