package wireguard

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// Overheads of WireGuard over each underlay: IP and UDP headers, the
// transport header and the tag.
const (
	OverheadIPv4 = 20 + 8 + transportHeaderSize + 16
	OverheadIPv6 = 40 + 8 + transportHeaderSize + 16
)

// PathMTU is what a session's probes found, in inner bytes (the largest IP
// packet the session carries whole); 0 means not decided yet.
type PathMTU struct {
	Forward int // agent → edge
	Reverse int // edge → agent
}

// ProberConfig configures a Prober.
type ProberConfig struct {
	Agent    PrivateKey    // the agent's WireGuard key
	Edge     PublicKey     // the edge's
	Endpoint string        // the edge's WireGuard ip:port
	MTU      int           // the inner MTU the edge configures: the search's ceiling
	Logger   *slog.Logger  // nil discards
	OnChange func(PathMTU) // told each change; must not block
}

// Prober drives the path MTU search of one edge session from the agent's
// side, both directions, over a ProbeBind (the edge answers, proberesp.go).
// Close stops its goroutine and waits for it.
type Prober struct {
	b        *ProbeBind
	cfg      ProberConfig
	pub      PublicKey
	key      [32]byte
	ep       conn.Endpoint
	hdr      int // the underlay's IP and UDP headers
	overhead int
	epoch    time.Time

	mu sync.Mutex
	s  *pmtuSearch
	rt time.Duration // smoothed answer time

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// StartProber starts probing the session of cfg.Edge through b.
func (b *ProbeBind) StartProber(cfg ProberConfig) (*Prober, error) {
	key, err := ProbeKey(cfg.Agent, cfg.Edge)
	if err != nil {
		return nil, err
	}
	ep, err := b.ParseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	is6 := ep.DstIP().Is6() && !ep.DstIP().Is4In6()
	p := &Prober{b: b, cfg: cfg, pub: cfg.Agent.PublicKey(), key: key, ep: ep, hdr: 28, overhead: OverheadIPv4, epoch: time.Now(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if is6 {
		p.hdr, p.overhead = 48, OverheadIPv6
	}
	if p.cfg.Logger == nil {
		p.cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p.s = newPMTUSearch(cfg.MTU+p.overhead, is6, randNonce)
	b.addProber(p)
	go p.run()
	return p, nil
}

func randNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// Close stops the prober.
func (p *Prober) Close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.b.removeProber(p)
}

// Kick searches again now (heartbeats came back after a loss).
func (p *Prober) Kick() {
	p.mu.Lock()
	p.s.kick(p.now())
	p.mu.Unlock()
	p.poke()
}

// PathMTU returns what the prober has decided so far.
func (p *Prober) PathMTU() PathMTU {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resultLocked()
}

func (p *Prober) resultLocked() PathMTU {
	var r PathMTU
	if c := p.s.d[dirForward].cur; c > 0 {
		r.Forward = c - p.overhead
	}
	if c := p.s.d[dirReverse].cur; c > 0 {
		r.Reverse = c - p.overhead
	}
	return r
}

func (p *Prober) now() time.Duration { return time.Since(p.epoch) }

func (p *Prober) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Prober) run() {
	defer close(p.done)
	var reqs []probeReq
	buf := make([]byte, MaxMessageSize)
	t := time.NewTimer(0)
	defer t.Stop()
	last := PathMTU{}
	for {
		p.mu.Lock()
		// Three answer times, at least probeTimeout, at most maxProbeTimeout
		// (a queue full of bulk data must not slow noticing a shrink).
		p.s.timeout = min(max(probeTimeout, 3*p.rt), maxProbeTimeout)
		var wake time.Duration
		now := p.now()
		reqs, wake = p.s.step(now, reqs[:0])
		res := p.resultLocked()
		p.mu.Unlock()
		for _, r := range reqs {
			p.send(buf, r, res)
		}
		if res != last {
			p.report(last, res)
			last = res
		}
		t.Reset(max(wake-p.now(), time.Millisecond))
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-t.C:
		}
	}
}

func (p *Prober) report(old, res PathMTU) {
	if old.Forward != res.Forward {
		p.cfg.Logger.Info("path MTU", "session", p.cfg.Edge.String(), "direction", dirForward.String(), "old", old.Forward, "new", res.Forward)
	}
	if old.Reverse != res.Reverse {
		p.cfg.Logger.Info("path MTU", "session", p.cfg.Edge.String(), "direction", dirReverse.String(), "old", old.Reverse, "new", res.Reverse)
	}
	if p.cfg.OnChange != nil {
		p.cfg.OnChange(res)
	}
}

// send sends one probe; every probe reports what is decided to the edge
// (which applies the edge→agent MTU and shows both).
func (p *Prober) send(buf []byte, r probeReq, res PathMTU) {
	m := probeMsg{kind: probeKindProbe, agent: p.pub, nonce: r.nonce, rmtu: res.Reverse, fmtu: res.Forward}
	n := ProbeHeaderSize
	if r.dir == dirForward {
		n = max(r.size-p.hdr, ProbeHeaderSize)
		m.flags = probeFlagAck
	} else {
		m.rsize = max(r.size-p.hdr, ProbeHeaderSize)
	}
	m.size = n
	putProbe(buf[:n], &m, &p.key)
	var err error
	if r.dir == dirForward {
		err = p.b.SendDF(buf[:n], p.ep)
	} else {
		err = p.b.Send([][]byte{buf[:n]}, p.ep)
	}
	if errors.Is(err, syscall.EMSGSIZE) {
		p.mu.Lock()
		p.s.failNow(r.dir, r.nonce) // larger than the local link
		p.mu.Unlock()
		p.poke()
	}
}

// handle takes an answer meant for p; it reports whether it was.
func (p *Prober) handle(msg []byte) bool {
	m, ok := parseProbe(msg)
	if !ok || m.agent != p.pub || !checkProbeMAC(msg, &p.key) {
		return false
	}
	var dir pmtuDir
	switch {
	case m.kind == probeKindAck:
		dir = dirForward
	case m.kind == probeKindRProbe && len(msg) == m.size:
		dir = dirReverse
	default:
		return true
	}
	p.mu.Lock()
	if p.s.answer(dir, m.nonce) {
		for _, t := range p.s.d[dir].tries {
			if t.nonce == m.nonce {
				rt := p.now() - t.sentAt
				if p.rt == 0 {
					p.rt = rt
				} else {
					p.rt = (7*p.rt + rt) / 8
				}
			}
		}
	}
	p.mu.Unlock()
	p.poke()
	return true
}

// addProber and removeProber keep the probers whose answers b's receive
// functions take out of the batch.
func (b *ProbeBind) addProber(p *Prober) {
	b.probersMu.Lock()
	defer b.probersMu.Unlock()
	ps := append(slices.Clone(b.probersList()), p)
	b.probers.Store(&ps)
}

func (b *ProbeBind) removeProber(p *Prober) {
	b.probersMu.Lock()
	defer b.probersMu.Unlock()
	ps := slices.DeleteFunc(slices.Clone(b.probersList()), func(q *Prober) bool { return q == p })
	b.probers.Store(&ps)
}

func (b *ProbeBind) probersList() []*Prober {
	if ps := b.probers.Load(); ps != nil {
		return *ps
	}
	return nil
}
