package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/router/policy"
)

// flowSweep is how often idle flows are ended; clockTick is the resolution
// of the coarse clock that stamps flows.
const (
	flowSweep = time.Second
	clockTick = 10 * time.Millisecond
)

// coarseClock is the time in unix nanoseconds, advanced every clockTick: the
// packet path reads it instead of the system clock.
type coarseClock struct{ ns atomic.Int64 }

func newCoarseClock() *coarseClock {
	c := &coarseClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

// Now returns the time at the latest tick.
func (c *coarseClock) Now() int64 { return c.ns.Load() }

// applyPolicies compiles the snapshot's policies against its names and hands
// them to the router when they changed; the snapshot's revision is the new
// generation, so every live flow is evaluated again on its next packet. d.mu
// is held.
func (d *dataplane) applyPolicies(s registry.Snapshot) {
	names := ruleNames{VNets: map[string]uint32{}, Tunnels: map[string][16]byte{}}
	byIndex := map[uint32]model.VNet{}
	for _, v := range s.VNets {
		idx := d.vnets[v.ID]
		names.VNets[v.Name], names.VNets[v.ID.String()] = idx, idx
		byIndex[idx] = v
	}
	for _, t := range s.Tunnels {
		names.Tunnels[t.Name], names.Tunnels[t.ID.String()] = t.ID, t.ID
	}
	d.flows.names.Store(&byIndex)
	// Only a change to what the rules see starts a new generation: other
	// writes (a device seen, a connector enrolled) leave live flows alone.
	// A device's identity (user, groups, posture) is part of it: the peers
	// took the new identity in applyLocked, and the new generation has the
	// established flows evaluated again with it on their next packet.
	key, err := json.Marshal(struct {
		P []model.Policy
		D string
		N ruleNames
		I []identityKey
	}{s.Policies, s.PolicyDefault, names, identityKeys(s.Devices)})
	if err == nil && bytes.Equal(key, d.policyKey) {
		return
	}
	d.policyKey = key
	rules, err := compileRules(s.Policies, names)
	var set *policy.Set
	if err == nil {
		set, err = policy.NewSet(rules, s.PolicyDefault != model.ActionBlock, uint64(s.Rev))
	}
	if err != nil {
		// The registry validated every rule; keep the old set rather than open up.
		d.log.Error("network policies not applied", "rev", s.Rev, "err", err)
		return
	}
	d.router.SetPolicies(set)
}

// runFlows writes the flow log, advances the coarse clock and ends idle
// flows once a second, until ctx ends; then it ends every flow so that the
// log is complete.
func (d *dataplane) runFlows(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(clockTick)
		defer t.Stop()
		lastSweep := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				d.clock.ns.Store(now.UnixNano())
				if now.Sub(lastSweep) >= flowSweep {
					d.router.ExpireFlows(false)
					lastSweep = now
				}
			}
		}
	}()
	if err := d.flows.run(ctx, func() { d.router.ExpireFlows(true) }); err != nil {
		d.log.Error("flow log stopped", "err", err)
	}
}
