//go:build netbench && linux

package bench

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/switchyard/switchyard/internal/lab"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// relayEnv starts this binary as the relay path's UDP relay:
// "PORT A B" with A and B the two gateways' address:port.
const relayEnv = "BENCH_RELAY"

// relayMain runs the binary as a relay and exits when relayEnv is set, and
// returns at once otherwise.
func relayMain() {
	spec := os.Getenv(relayEnv)
	if spec == "" {
		return
	}
	if err := runRelay(spec); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runRelay forwards every datagram from A to B and from B to A through the
// edge's own socket layer (OffloadBind: batched reads and writes, UDP GRO
// and GSO) until SIGTERM: the edge's hop without its crypto, routing and
// sessions. It answers the question the RTT target asks of the machine,
// what one more process on the path costs by itself.
func runRelay(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return fmt.Errorf("%s=%q: want PORT A B", relayEnv, spec)
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil {
		return fmt.Errorf("%s port %q: %w", relayEnv, f[0], err)
	}
	bind := wireguard.NewOffloadBind()
	var peers [2]conn.Endpoint
	for i, a := range f[1:] {
		if peers[i], err = bind.ParseEndpoint(a); err != nil {
			return fmt.Errorf("%s peer %q: %w", relayEnv, a, err)
		}
	}
	fns, _, err := bind.Open(uint16(port))
	if err != nil {
		return fmt.Errorf("relay: open port %d: %w", port, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for _, fn := range fns {
		go relayLoop(bind, fn, peers)
	}
	fmt.Println("relay started")
	<-ctx.Done()
	return bind.Close()
}

// relayLoop moves what fn receives to the other peer, one Send per run of
// datagrams for the same peer; it returns when the bind closes.
func relayLoop(bind conn.Bind, fn conn.ReceiveFunc, peers [2]conn.Endpoint) {
	n := bind.BatchSize()
	bufs, sizes, eps := make([][]byte, n), make([]int, n), make([]conn.Endpoint, n)
	for i := range bufs {
		bufs[i] = make([]byte, 65535)
	}
	b := peers[1].DstIP()
	out, to := make([][]byte, 0, n), -1
	flush := func() {
		if len(out) > 0 {
			_ = bind.Send(out, peers[to]) // a lost datagram is the tunnel's to recover
		}
		out = out[:0]
	}
	for {
		got, err := fn(bufs, sizes, eps)
		if err != nil {
			return
		}
		for i := range got {
			dst := 1 // from A (or anyone else) to B
			if eps[i].DstIP() == b {
				dst = 0
			}
			if dst != to {
				flush()
				to = dst
			}
			out = append(out, bufs[i][:sizes[i]])
		}
		flush()
	}
}

// startRelay starts the relay in ns on port between gateways a and b.
func startRelay(t *testing.T, ns *lab.NS, port, a, b string) *lab.Proc {
	self, err := os.Executable()
	must(t, err)
	p := ns.Start(t, "env", relayEnv+"="+strings.Join([]string{port, a, b}, " "), self)
	must(t, p.WaitFor("relay started", 10*time.Second))
	return p
}

// benchWGRelay: the direct wireguard-go tunnel (the binary bin), its UDP
// through a bare relay on the middle box: the RTT and CPU of one more
// process on the path, with no crypto, routing or sessions in it.
func benchWGRelay(bin, name string) func(context.Context, *testing.T, config, *Results) {
	return func(ctx context.Context, t *testing.T, cfg config, res *Results) {
		tp := newTopo(t)
		ka, kb := newWGKey(t), newWGKey(t)
		relay := startRelay(t, tp.mid, wgPort, gwaWAN+":"+wgPort, gwbWAN+":"+wgPort)
		mid := midWAN + ":" + wgPort
		pa := startWG(t, tp, bin, tp.gwa, "wa", ka, []wgPeer{{kb, mid, "10.2.0.0/16"}}, "10.2.0.0/16")
		pb := startWG(t, tp, bin, tp.gwb, "wb", kb, []wgPeer{{ka, mid, "10.1.0.0/16"}}, "10.1.0.0/16")
		measure(ctx, t, cfg, res, pathSpec{name: name, iperfd: tp.iperfd, src: tp.hosta,
			desc:    "host A → wireguard-go on gwa ═ bare UDP relay (OffloadBind, no crypto) ═ wireguard-go on gwb → host B; " + wgVersion(bin),
			daemons: []daemon{{"gwa wireguard-go", pa}, {"relay", relay}, {"gwb wireguard-go", pb}}})
	}
}
