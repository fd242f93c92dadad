//go:build linux

package tun

import (
	"bytes"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/internal/lab"
)

// enterNewNetns moves the test's goroutine, locked to its thread, into a
// fresh namespace of a lab (which skips the test unless root); cleanup moves
// it back and removes the namespace.
func enterNewNetns(t *testing.T) {
	t.Helper()
	lab.New(t).NS("tun").Enter(t)
}

func TestCreateKernelNetns(t *testing.T) {
	enterNewNetns(t)
	const name, mtu = "sy0", 1420
	dev, err := CreateKernel(name, mtu)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() }) // runs before leaving the namespace

	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	if got := link.Attrs().MTU; got != mtu {
		t.Errorf("kernel mtu = %d, want %d", got, mtu)
	}
	if got, err := dev.MTU(); err != nil || got != mtu {
		t.Errorf("dev.MTU() = %d, %v; want %d", got, err, mtu)
	}

	// The virtio-net header and offloads are what make batching possible.
	var flags uint16
	rc, err := dev.File().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			ioErr = err
			return
		}
		ioErr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr)
		flags = ifr.Uint16()
	}); err != nil || ioErr != nil {
		t.Fatalf("TUNGETIFF: %v %v", err, ioErr)
	}
	if flags&unix.IFF_VNET_HDR == 0 {
		t.Errorf("IFF_VNET_HDR not set (flags %#x)", flags)
	}
	if got := dev.BatchSize(); got <= 1 {
		t.Errorf("BatchSize = %d, want > 1 with offloads", got)
	}
	if tso, err := ethtoolGet(name, unix.ETHTOOL_GTSO); err != nil {
		t.Errorf("ethtool get tso: %v", err)
	} else if tso == 0 {
		t.Errorf("tcp segmentation offload is off")
	}
}

// TestMSSClampKernelSYN connects a TCP socket through a real 1500-byte TUN
// and checks that the SYN read through an MSSClamp for a 1420-byte tunnel
// carries MSS 1380 with a valid checksum (the kernel leaves the checksum
// to offload; wireguard-go completes it before the clamp sees it).
func TestMSSClampKernelSYN(t *testing.T) {
	enterNewNetns(t)
	dev, err := CreateKernel("sy0", 1500)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewMSSClamp(dev, testMTU)
	if err != nil {
		t.Fatal(err)
	}
	link, err := netlink.LinkByName("sy0")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netlink.ParseAddr("192.0.2.1/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		t.Fatalf("add address: %v", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatalf("set sy0 up: %v", err)
	}

	syns := make(chan []byte, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		bufs := make([][]byte, c.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, testOffset+65535)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := c.Read(bufs, sizes, testOffset)
			if err != nil {
				return
			}
			for i := range n {
				pkt := bufs[i][testOffset : testOffset+sizes[i]]
				if len(pkt) >= 40 && pkt[0]>>4 == 4 && pkt[9] == protoTCP && pkt[20+13]&flagSYN != 0 {
					syns <- bytes.Clone(pkt)
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		c.Close() // unblocks Read
		<-done
	})

	// Connect from this goroutine's thread, which is in the namespace.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 2}, Port: 443})
	if err != nil && err != unix.EINPROGRESS {
		t.Fatalf("connect: %v", err)
	}
	select {
	case pkt := <-syns:
		if mss := packetMSS(pkt); mss != 1380 {
			t.Errorf("mss = %d, want 1380", mss)
		}
		if !tcpChecksumValid(pkt) {
			t.Errorf("checksum invalid after clamping")
		}
		if got := c.Stats().Read; got != 1 {
			t.Errorf("Stats().Read = %d, want 1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no SYN read from the TUN")
	}
}

// ethtoolGet runs a legacy ETHTOOL_G* command that returns a struct
// ethtool_value.
func ethtoolGet(name string, cmd uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	value := struct{ cmd, data uint32 }{cmd: cmd}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(ifr.name[:], name)
	ifr.data = uintptr(unsafe.Pointer(&value))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&value)
	if errno != 0 {
		return 0, errno
	}
	return value.data, nil
}
