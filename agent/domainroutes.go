package agent

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/agent/dns"
	"github.com/switchyard/switchyard/control/model"
)

// Bounds of the domain split tunnel's learned addresses.
const (
	// domainRouteFloor is the shortest time a learned address stays
	// routed, whatever its record's TTL (a TTL of 0 or 5 s would let the
	// route go while the connection it was learned for still runs).
	domainRouteFloor = 60 * time.Second
	// maxDomainRoutes bounds the learned addresses; the one that expires
	// first goes when a new one comes.
	maxDomainRoutes = 4096
	// domainRouteSweep is how often expired addresses are removed.
	domainRouteSweep = time.Second
)

// domainRoutes is the domain split tunnel: the addresses the DNS stub
// relayed for a name its domain entries cover, each held for max(TTL,
// floor), at most max of them. Every change of the set calls changed
// (synchronously: learn returns once the routes are in place), which
// reads the set with snapshot and reports it applied with applied.
type domainRoutes struct {
	floor   time.Duration
	max     int
	now     func() time.Time
	changed func()

	mu      sync.Mutex
	domains []string                   // canonical split tunnel domains (model.ParseSplitDomain)
	addrs   map[netip.Addr]learnedAddr // learned address → its name and expiry
	gen     uint64                     // counts the set's changes
	done    uint64                     // the gen whose routes are in place

	nlearned, nevicted, nexpired atomic.Uint64
}

// learnedAddr is what domainRoutes keeps of one address.
type learnedAddr struct {
	name    string
	expires time.Time
	gen     uint64 // the set's gen when it came
}

// newDomainRoutes returns an empty set that calls changed on each change.
func newDomainRoutes(changed func()) *domainRoutes {
	return &domainRoutes{floor: domainRouteFloor, max: maxDomainRoutes, now: time.Now, changed: changed, addrs: map[netip.Addr]learnedAddr{}}
}

// setDomains replaces the domain entries; learned addresses whose name no
// entry covers any more are dropped. It reports whether the set changed
// (the caller applies the routes then).
func (d *domainRoutes) setDomains(domains []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.domains = slices.Clone(domains)
	n := len(d.addrs)
	for a, l := range d.addrs {
		if !d.coveredLocked(l.name) {
			delete(d.addrs, a)
		}
	}
	if len(d.addrs) == n {
		return false
	}
	d.gen++
	return true
}

func (d *domainRoutes) coveredLocked(name string) bool {
	for _, dom := range d.domains {
		if model.SplitDomainMatches(dom, name) {
			return true
		}
	}
	return false
}

// learn is the stub's OnAnswer: when a domain entry covers name, its
// addresses are routed (or their time extended) before it returns.
func (d *domainRoutes) learn(name string, answers []dns.Answer) {
	d.mu.Lock()
	if !d.coveredLocked(name) {
		d.mu.Unlock()
		return
	}
	now, pending := d.now(), false
	for _, an := range answers {
		a := an.Addr.Unmap()
		exp := now.Add(max(an.TTL, d.floor))
		if l, ok := d.addrs[a]; ok {
			if exp.After(l.expires) {
				l.name, l.expires = name, exp
				d.addrs[a] = l
			}
			pending = pending || l.gen > d.done // another answer's, its route maybe not in place yet
			continue
		}
		if len(d.addrs) >= d.max {
			d.evictLocked()
		}
		d.gen++
		d.addrs[a] = learnedAddr{name: name, expires: exp, gen: d.gen}
		d.nlearned.Add(1)
		pending = true
	}
	d.mu.Unlock()
	if pending {
		d.changed()
	}
}

// evictLocked drops the address that expires first.
func (d *domainRoutes) evictLocked() {
	var first netip.Addr
	var at time.Time
	for a, l := range d.addrs {
		if !first.IsValid() || l.expires.Before(at) {
			first, at = a, l.expires
		}
	}
	if first.IsValid() {
		delete(d.addrs, first)
		d.nevicted.Add(1)
	}
}

// expire drops the addresses whose time is up, and reports whether any went.
func (d *domainRoutes) expire() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now, n := d.now(), len(d.addrs)
	for a, l := range d.addrs {
		if !now.Before(l.expires) {
			delete(d.addrs, a)
			d.nexpired.Add(1)
		}
	}
	if len(d.addrs) == n {
		return false
	}
	d.gen++
	return true
}

// run removes expired addresses (calling changed) every sweep until ctx ends.
func (d *domainRoutes) run(ctx context.Context, sweep time.Duration) {
	t := time.NewTicker(sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.expire() {
				d.changed()
			}
		}
	}
}

// snapshot returns the learned addresses as host prefixes, sorted, and
// the set's gen, for applied.
func (d *domainRoutes) snapshot() ([]netip.Prefix, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]netip.Prefix, 0, len(d.addrs))
	for a := range d.addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, d.gen
}

// applied records that the routes of snapshot's gen are in place (or
// failed, logged: a failed set is not retried per answer).
func (d *domainRoutes) applied(gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = max(d.done, gen)
}

// len is how many addresses are learned.
func (d *domainRoutes) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.addrs)
}

// splitDomains returns the domain entries of a split tunnel.
func splitDomains(st model.SplitTunnel) []string {
	var out []string
	for _, e := range st.Entries {
		if e.Domain != "" {
			out = append(out, e.Domain)
		}
	}
	return out
}
