package wireguard

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
)

// ProbeBind wraps a conn.Bind (OffloadBind, StdNetBind or AddrBind) for
// path MTU probing: SendDF sends one probe with DF set while every data
// datagram goes without (IP_PMTUDISC_DONT, fragment_linux.go), and its
// receive functions hand the answers to its probers' probes to them, taking
// them out of the batch (size 0, which wireguard-go and the Endpoint skip), before the
// WireGuard implementation sees them.
//
// Linux has no per-datagram DF for IPv4, so SendDF switches the socket to
// IP_PMTUDISC_PROBE for one send and back: it holds mu's write side, and
// every data Send its read side, so no data datagram ever leaves with DF.
type ProbeBind struct {
	conn.Bind
	mu    sync.RWMutex
	socks atomic.Pointer[probeSockets]
	// probers get the answers to their probes (prober.go).
	probersMu sync.Mutex
	probers   atomic.Pointer[[]*Prober]
}

// probeSockets are the bind's sockets, captured when it opened them.
type probeSockets struct{ v4, v6 syscall.RawConn }

var (
	_ conn.Bind = (*ProbeBind)(nil)
	_ DFSender  = (*ProbeBind)(nil)
)

// NewProbeBind wraps b; nil means the default bind (OffloadBind on Linux,
// wireguard-go's elsewhere), whose sockets let data fragment (FragmentOuter).
func NewProbeBind(b conn.Bind) *ProbeBind {
	FragmentOuter()
	if b == nil {
		b = defaultBind()
	}
	return &ProbeBind{Bind: b}
}

// Open opens the wrapped bind and remembers the sockets it opened.
func (b *ProbeBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	captureMu.Lock()
	capturing.Store(true)
	fns, actual, err := b.Bind.Open(port)
	capturing.Store(false)
	capturedMu.Lock()
	got := captured
	captured = nil
	capturedMu.Unlock()
	captureMu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	var ps probeSockets
	for _, c := range got {
		if p, is6, ok := socketPort(c.rc); ok && p == actual {
			if is6 {
				ps.v6 = c.rc
			} else {
				ps.v4 = c.rc
			}
		}
	}
	b.socks.Store(&ps)
	out := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		out[i] = b.wrapReceive(fn)
	}
	return out, actual, nil
}

func (b *ProbeBind) wrapReceive(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(bufs, sizes, eps)
		if ps := b.probers.Load(); ps != nil && len(*ps) > 0 {
			for i := range n {
				if msg := bufs[i][:sizes[i]]; isProbe(msg) && msg[0] != probeKindProbe {
					for _, p := range *ps {
						if p.handle(msg) {
							break
						}
					}
					sizes[i] = 0
				}
			}
		}
		return n, err
	}
}

// Close closes the wrapped bind and forgets its sockets.
func (b *ProbeBind) Close() error {
	b.mu.Lock()
	b.socks.Store(nil)
	b.mu.Unlock()
	return b.Bind.Close()
}

// Send sends data datagrams, never with DF.
func (b *ProbeBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.RLock()
	err := b.Bind.Send(bufs, ep)
	b.mu.RUnlock()
	return err
}

// ErrNoProbeSocket is returned by SendDF when the bind's socket for the
// destination's address family was not captured (a bind of tests): the
// probe goes out without DF.
var ErrNoProbeSocket = errors.New("wireguard: no socket to set DF on for a probe")

// SendDF sends one datagram with DF set (IP_PMTUDISC_PROBE: the kernel
// neither fragments it nor lets a cached path MTU shrink it; larger than
// the link it fails with EMSGSIZE).
func (b *ProbeBind) SendDF(buf []byte, ep conn.Endpoint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var rc syscall.RawConn
	is6 := ep.DstIP().Is6() && !ep.DstIP().Is4In6()
	if ps := b.socks.Load(); ps != nil {
		if is6 {
			rc = ps.v6
		} else {
			rc = ps.v4
		}
	}
	if rc == nil {
		if err := b.Bind.Send([][]byte{buf}, ep); err != nil {
			return err
		}
		return ErrNoProbeSocket
	}
	if err := setProbeDF(rc, is6, true); err != nil {
		return err
	}
	err := b.Bind.Send([][]byte{buf}, ep)
	if rerr := setProbeDF(rc, is6, false); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// Sockets opened while a ProbeBind opens its bind (captureControl runs in
// every WireGuard socket's listen config): Open serializes on captureMu and
// keeps those on the port it got, so that a bind opened at the same time
// elsewhere in the process is not taken for its own.
var (
	captureMu  sync.Mutex // held by ProbeBind.Open
	capturing  atomic.Bool
	capturedMu sync.Mutex
	captured   []capturedSocket // capturedMu
)

type capturedSocket struct{ rc syscall.RawConn }

// captureControl is a net.ListenConfig.Control that records the socket for
// the ProbeBind being opened, if any.
func captureControl(_, _ string, c syscall.RawConn) error {
	if capturing.Load() {
		capturedMu.Lock()
		captured = append(captured, capturedSocket{rc: c})
		capturedMu.Unlock()
	}
	return nil
}
