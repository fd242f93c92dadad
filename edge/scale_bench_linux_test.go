package edge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/transport/heartbeat"
)

// BenchmarkDirectoryScale brings up 10k and 100k device sessions in one
// edge's session directory — a snapshot naming them applied as the edge
// applies its control plane's (a WireGuard peer, a router peer and an overlay
// route each), then a first heartbeat from each — and reports the time per
// agent of each step (linear if the 100k figures match the 10k ones), the
// cost of a steady heartbeat, the heap each idle session holds, and the CPU
// the edge spends on liveness with every session silent. Only the packets are
// missing: heartbeats go straight to the code that answers them, so the
// figures are the directory's, not the transport's. BENCH_QUICK=1 skips 100k.
func BenchmarkDirectoryScale(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			if n > 10_000 && os.Getenv("BENCH_QUICK") == "1" {
				b.Skip("BENCH_QUICK=1")
			}
			for b.Loop() {
				runDirectoryScale(b, n)
			}
		})
	}
}

func runDirectoryScale(b *testing.B, n int) {
	dir := b.TempDir()
	id, err := loadIdentity(dir)
	if err != nil {
		b.Fatal(err)
	}
	snap := scaleSnapshot(n)
	h0 := heapNow()
	d, err := startDataplane(Config{DataDir: dir, WGListen: "127.0.0.1:0", OverlayRange: model.DefaultOverlayRange}, id, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer d.ep.Close()

	t0 := time.Now()
	d.apply(snap)
	add := time.Since(t0)
	if len(d.byKey) != n {
		b.Fatalf("%d sessions in the directory, want %d", len(d.byKey), n)
	}
	sessions := make([]*session, 0, n)
	for _, s := range d.byKey {
		// No handshakes here: each WireGuard session counts as established.
		s.link = establishedLink{s.link.(wgLink)}
		sessions = append(sessions, s)
	}
	m := heartbeat.Message{Type: heartbeat.Probe, Interval: 100 * time.Millisecond, Multiplier: 5}
	t1 := time.Now()
	for i, s := range sessions {
		m.Seq = uint32(i)
		d.probe(s, m)
	}
	first := time.Since(t1)
	up := 0
	for _, s := range sessions {
		if s.peer.Up() {
			up++
		}
	}
	if up != n {
		b.Fatalf("%d of %d sessions up after their first heartbeat", up, n)
	}
	t2 := time.Now()
	for i, s := range sessions {
		m.Seq = uint32(n + i)
		d.probe(s, m)
	}
	steady := time.Since(t2)

	// Silent: every session stops sending; the liveness loop takes them down
	// within their detect time, then idles.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.watchLiveness(ctx) }()
	time.Sleep(m.Detect() + 2*livenessSweep)
	cpu0, wall0 := cpuNow(), time.Now()
	time.Sleep(3 * time.Second)
	idle := float64(cpuNow()-cpu0) / float64(time.Since(wall0)) * 100
	cancel()
	<-done
	for _, s := range sessions[:10] {
		if s.peer.Up() {
			b.Fatal("a silent session is still up")
		}
	}
	heap := float64(heapNow()-h0) / float64(n)
	runtime.KeepAlive(d)

	b.ReportMetric(float64(add.Nanoseconds())/float64(n), "ns/agent-add")
	b.ReportMetric(float64(first.Nanoseconds())/float64(n), "ns/agent-up")
	b.ReportMetric(float64(steady.Nanoseconds())/float64(n), "ns/heartbeat")
	b.ReportMetric(heap, "B/session")
	b.ReportMetric(idle, "idle-cpu-%")
}

// scaleSnapshot is a control plane snapshot with n devices in the default vnet.
func scaleSnapshot(n int) registry.Snapshot {
	vnet := model.VNet{ID: uuid.New(), Name: "default", IsDefault: true}
	s := registry.Snapshot{Rev: 1, VNets: []model.VNet{vnet}, PolicyDefault: model.ActionAllow}
	key := make([]byte, 32)
	base := netip.MustParseAddr("100.96.0.0").As4()
	for i := range n {
		rand.Read(key)
		ip := base
		ip[1] += byte((i + 2) >> 16)
		ip[2], ip[3] = byte((i+2)>>8), byte(i+2)
		s.Devices = append(s.Devices, model.Device{ID: uuid.New(), Name: fmt.Sprintf("d%d", i), Key: base64.StdEncoding.EncodeToString(key),
			IP: netip.AddrFrom4(ip), VNetID: vnet.ID})
	}
	return s
}

func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// cpuNow is the process's user and system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// establishedLink is a WireGuard link whose session counts as established,
// for a benchmark that runs no handshakes.
type establishedLink struct{ wgLink }

func (establishedLink) usable() bool { return true }
