package wireguard

import (
	"net/netip"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// udpPMTUDisc returns the IP_MTU_DISCOVER (or IPV6_MTU_DISCOVER) setting of
// each of this process's UDP sockets bound to port, by address family.
func udpPMTUDisc(t *testing.T, port uint16) map[int]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	got := map[int]int{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
			continue
		}
		switch sa, _ := unix.Getsockname(fd); a := sa.(type) {
		case *unix.SockaddrInet4:
			if a.Port == int(port) {
				got[unix.AF_INET], _ = unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER)
			}
		case *unix.SockaddrInet6:
			if a.Port == int(port) {
				got[unix.AF_INET6], _ = unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER)
			}
		}
	}
	return got
}

// TestFragmentOuter: after FragmentOuter, the sockets of wireguard-go's
// StdNetBind (both families) and of an AddrBind let datagrams fragment, so
// that a silent underlay hop smaller than the outer packets fragments them
// instead of dropping them.
func TestFragmentOuter(t *testing.T) {
	FragmentOuter()
	b := conn.NewStdNetBind()
	_, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := udpPMTUDisc(t, port)
	if v, ok := got[unix.AF_INET]; !ok || v != unix.IP_PMTUDISC_DONT {
		t.Errorf("StdNetBind's IPv4 socket on port %d: IP_MTU_DISCOVER %d (found %v), want IP_PMTUDISC_DONT (%d)", port, v, ok, unix.IP_PMTUDISC_DONT)
	}
	if v, ok := got[unix.AF_INET6]; ok && v != unix.IPV6_PMTUDISC_DONT {
		t.Errorf("StdNetBind's IPv6 socket on port %d: IPV6_MTU_DISCOVER %d, want IPV6_PMTUDISC_DONT (%d)", port, v, unix.IPV6_PMTUDISC_DONT)
	}

	ab, err := NewAddrBind(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	_, aport, err := ab.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ab.Close()
	if v, ok := udpPMTUDisc(t, aport)[unix.AF_INET]; !ok || v != unix.IP_PMTUDISC_DONT {
		t.Errorf("AddrBind's socket on port %d: IP_MTU_DISCOVER %d (found %v), want IP_PMTUDISC_DONT (%d)", aport, v, ok, unix.IP_PMTUDISC_DONT)
	}
}
