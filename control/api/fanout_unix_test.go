//go:build unix

package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// fanoutTunnels is how many tunnels the connectors of BenchmarkConfigFanout
// belong to, each with one route: every configuration carries about as many
// prefixes.
const fanoutTunnels = 100

// BenchmarkConfigFanout measures the time for one route change to reach the
// configuration long polls of every connected connector: n connectors, each
// with its own client (its own TLS connection, as agents have, unless
// RLIMIT_NOFILE is too low for that), wait in
// client.WatchConnectorConfig on a loopback HTTPS API server over a bbolt
// store; each iteration adds a route to the virtual network they all serve
// and waits until every poll has returned a configuration that holds it.
// It reports, over the iterations, the mean of each change's p50 and p99
// and the largest delay seen, from the start of the write to a poll's
// return (-benchtime=3x makes three changes).
func BenchmarkConfigFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			if n > 1000 && os.Getenv("BENCH_QUICK") == "1" {
				b.Skip("BENCH_QUICK=1")
			}
			benchFanout(b, n)
		})
	}
}

// fanoutChange is one route change and when each poll saw it.
type fanoutChange struct {
	prefix netip.Prefix
	start  time.Time
	delay  []time.Duration // by poller; written once by its poller
	left   atomic.Int64    // polls yet to see it
	done   chan struct{}   // closed when left reaches 0
}

func benchFanout(b *testing.B, n int) {
	// Each connection costs two descriptors here, client's and server's.
	// Where RLIMIT_NOFILE (which only root may raise past its hard limit)
	// leaves too few, a few agents share a client, whose requests share an
	// HTTP/2 connection.
	conns := n
	if budget := raiseNoFile(uint64(2*n + 1024)); budget < uint64(2*n+1024) {
		conns = (int(budget) - 1024) / 2 / fanoutTunnels * fanoutTunnels
		if conns < n/2 {
			b.Skipf("RLIMIT_NOFILE is %d: %d connections need %d descriptors", budget, n, 2*n+1024)
		}
		b.Logf("RLIMIT_NOFILE is %d: %d agents share %d connections", budget, n, conns)
	}
	l := newLimitedLab(b, api.Limits{MaxConns: n + 1024, ReadHeaderTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Tunnels with a route each, through the API.
	tokens := make([]string, fanoutTunnels)
	tunnelIDs := make([]uuid.UUID, fanoutTunnels)
	for i := range fanoutTunnels {
		created, err := l.admin.CreateTunnel(ctx, fmt.Sprintf("site%03d", i))
		if err != nil {
			b.Fatal(err)
		}
		tokens[i], tunnelIDs[i] = created.Token, created.Tunnel.ID
		p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48)
		if _, err := l.admin.AddRoute(ctx, model.NewRoute{Network: p, Tunnel: created.Tunnel.Name}); err != nil {
			b.Fatal(err)
		}
	}
	// The connectors, written as EnrollConnector writes them: enrolling
	// reads every connector, so 10k enrollments one by one would take minutes.
	ids := make([]uuid.UUID, n)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for start := 0; start < n; start += 1000 {
		_, err := l.reg.Store().Update(ctx, func(tx store.Tx) error {
			for i := start; i < min(start+1000, n); i++ {
				ids[i] = uuid.New()
				c := model.Connector{ID: ids[i], TunnelID: tunnelIDs[i%fanoutTunnels], PublicKey: wgKey(),
					Hostname: fmt.Sprintf("gw%05d", i), Version: "bench", CreatedAt: now, UpdatedAt: now}
				buf, err := json.Marshal(c)
				if err != nil {
					return err
				}
				if err := tx.Put("connectors", c.ID.String(), buf); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}

	// Every connector fetches its configuration, then long polls; dials are
	// spread out so the accept queue never overflows.
	var cur atomic.Pointer[fanoutChange]
	var failures atomic.Int64
	var ready, stopped sync.WaitGroup
	dials := make(chan struct{}, 128)
	setupStart := time.Now()
	clients := make([]*client.Client, conns) // client j has tunnel j%fanoutTunnels's token
	for j := range clients {
		var err error
		if clients[j], _, err = client.NewConnector(tokens[j%fanoutTunnels]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		c := clients[i%conns]
		ready.Add(1)
		stopped.Add(1)
		go func() {
			defer stopped.Done()
			dials <- struct{}{}
			_, tag, _, err := c.WatchConnectorConfig(ctx, ids[i], "", 0)
			<-dials
			ready.Done()
			if err != nil {
				failures.Add(1)
				return
			}
			for ctx.Err() == nil {
				cfg, newTag, changed, err := c.WatchConnectorConfig(ctx, ids[i], tag, time.Minute)
				if err != nil {
					if ctx.Err() == nil {
						failures.Add(1)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				if !changed {
					continue
				}
				tag = newTag
				ch := cur.Load()
				if ch == nil || ch.delay[i] != 0 || !(slices.Contains(cfg.Routes, ch.prefix) || slices.Contains(cfg.SitePrefixes, ch.prefix)) {
					continue
				}
				ch.delay[i] = time.Since(ch.start)
				if ch.left.Add(-1) == 0 {
					close(ch.done)
				}
			}
		}()
	}
	ready.Wait()
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d connectors could not fetch their configuration", f, n)
	}
	b.Logf("%d connectors connected in %v", n, time.Since(setupStart).Round(time.Millisecond))
	settle := time.Second + time.Duration(n)*50*time.Microsecond // for the polls to reach the server
	time.Sleep(settle)

	var p50s, p99s []time.Duration
	var worst time.Duration
	k := 0
	for b.Loop() {
		ch := &fanoutChange{prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, byte(k >> 8), byte(k)}), 64),
			delay: make([]time.Duration, n), done: make(chan struct{})}
		ch.left.Store(int64(n))
		cur.Store(ch)
		ch.start = time.Now()
		if _, err := l.reg.AddRoute(ctx, model.NewRoute{Network: ch.prefix, Tunnel: "site000"}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("change %d reached %d of %d polls within 30s", k, n-int(ch.left.Load()), n)
		}
		d := slices.Clone(ch.delay)
		slices.Sort(d)
		p50, p99, hi := d[n/2], d[(n*99)/100], d[n-1]
		b.Logf("change %d: p50 %v p99 %v max %v", k, p50.Round(time.Microsecond), p99.Round(time.Microsecond), hi.Round(time.Microsecond))
		p50s, p99s, worst = append(p50s, p50), append(p99s, p99), max(worst, hi)
		k++
		b.StopTimer()
		time.Sleep(settle) // the polls return to the server
		b.StartTimer()
	}
	b.ReportMetric(ms(mean(p50s)), "p50-ms")
	b.ReportMetric(ms(mean(p99s)), "p99-ms")
	b.ReportMetric(ms(worst), "max-ms")
	if f := failures.Load(); f > 0 {
		b.Errorf("%d long polls failed", f)
	}
	cancel()
	stopped.Wait()
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(max(len(d), 1))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// raiseNoFile raises RLIMIT_NOFILE to want, the hard limit too when the
// process may (root), and returns the soft limit it ends with.
func raiseNoFile(want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}) == nil {
		return want
	}
	raised := lim
	raised.Cur = lim.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
		return raised.Cur
	}
	return lim.Cur
}
