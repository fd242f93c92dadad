package wireguard

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/internal/checksum"
)

// RFC 5737 addresses for the overlay.
var (
	edgeIP  = netip.MustParseAddr("192.0.2.1")
	agentIP = netip.MustParseAddr("192.0.2.2")
)

func mustKey(t testing.TB) PrivateKey {
	t.Helper()
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestEndpoint(t testing.TB, cfg Config) *Endpoint {
	t.Helper()
	if cfg.PrivateKey.IsZero() {
		cfg.PrivateKey = mustKey(t)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// echoReflector answers ICMP echo requests on the session they came from.
type echoReflector struct {
	e *Endpoint
}

func (r *echoReflector) Receive(pkts []Packet) {
	for _, p := range pkts {
		if makeEchoReply(p.Data()) {
			_ = r.e.Send(p.Session, [][]byte{p.Buf}, Headroom)
		}
	}
}

// makeEchoReply turns an IPv4 ICMP echo request into its reply in place.
func makeEchoReply(pkt []byte) bool {
	if len(pkt) < 28 || pkt[0]>>4 != 4 || pkt[9] != 1 {
		return false
	}
	ihl := int(pkt[0]&0xf) * 4
	if len(pkt) < ihl+8 || pkt[ihl] != 8 {
		return false
	}
	var src [4]byte
	copy(src[:], pkt[12:16])
	copy(pkt[12:16], pkt[16:20])
	copy(pkt[16:20], src[:])
	icmp := pkt[ihl:]
	icmp[0] = 0
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], ^checksum.Fold(checksum.Sum(icmp, 0)))
	return true
}

func isEchoReply(pkt []byte, src netip.Addr) bool {
	return len(pkt) >= 28 && pkt[0]>>4 == 4 && pkt[9] == 1 && pkt[20] == 0 &&
		netip.AddrFrom4([4]byte(pkt[12:16])) == src
}

func hexKey(k [32]byte) string { return hex.EncodeToString(k[:]) }

// newWGDevice starts a wireguard-go device on a channel TUN.
func newWGDevice(t testing.TB, bind conn.Bind, priv PrivateKey, peers string) (*device.Device, *tuntest.ChannelTUN) {
	t.Helper()
	tn := tuntest.NewChannelTUN()
	dev := device.NewDevice(tn.TUN(), bind, device.NewLogger(device.LogLevelSilent, ""))
	cfg := "private_key=" + hexKey(priv) + "\nlisten_port=0\n" + peers
	if err := dev.IpcSet(cfg); err != nil {
		t.Fatalf("wireguard-go IpcSet: %v", err)
	}
	if err := dev.Up(); err != nil {
		t.Fatalf("wireguard-go Up: %v", err)
	}
	t.Cleanup(dev.Close)
	return dev, tn
}

func wgListenPort(t testing.TB, dev *device.Device) uint16 {
	t.Helper()
	s, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return uint16(p)
		}
	}
	t.Fatal("wireguard-go: no listen_port")
	return 0
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutineLeakCheck fails the test if goroutines started during it are
// still running once its cleanups have run.
func goroutineLeakCheck(t *testing.T) {
	start := runtime.NumGoroutine()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		for i := 0; i < 500; i++ {
			if runtime.NumGoroutine() <= start {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		var b bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("goroutine leak: started with %d, have %d:\n%s", start, runtime.NumGoroutine(), b.String())
	})
}

// pingThroughDevice sends echo requests into a wireguard-go TUN until a
// reply comes back out of it.
func pingThroughDevice(t testing.TB, tn *tuntest.ChannelTUN, dst, src netip.Addr, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case tn.Outbound <- tuntest.Ping(dst, src):
		case pkt := <-tn.Inbound:
			if isEchoReply(pkt, dst) {
				return
			}
		case <-deadline:
			t.Fatalf("no echo reply from %v within %v", dst, d)
		}
		select {
		case pkt := <-tn.Inbound:
			if isEchoReply(pkt, dst) {
				return
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no echo reply from %v within %v", dst, d)
		}
	}
}

var _ = fmt.Sprint

func addrPort(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}
