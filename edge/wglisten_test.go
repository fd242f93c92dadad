package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
)

// TestWGListenBindsItsHost: --wg-listen 127.0.0.2:PORT binds that address
// alone (it once took the port on every address): the kernel's socket table
// shows 127.0.0.2, and the port is free on 127.0.0.1.
func TestWGListenBindsItsHost(t *testing.T) {
	dir := t.TempDir()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: id.master})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: dir, WGListen: "127.0.0.2:0", OverlayRange: model.DefaultOverlayRange}
	dp, err := startDataplane(cfg, id, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dp.ep.Close()
	port := dp.ep.Port()
	if udp, err := os.ReadFile("/proc/net/udp"); err == nil {
		want := fmt.Sprintf(" 0200007F:%04X ", port) // 127.0.0.2, little-endian, as the kernel prints it
		if !strings.Contains(string(udp), want) {
			t.Errorf("/proc/net/udp has no socket on 127.0.0.2:%d:\n%s", port, udp)
		}
	}
	for _, other := range []string{"127.0.0.1", "127.0.0.3"} {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(other), port)))
		if err != nil {
			t.Fatalf("%s:%d is taken although the edge was told to listen on 127.0.0.2: %v", other, port, err)
		}
		c.Close()
	}

	for _, bad := range []string{"edge.example:51820", "127.0.0.1", "127.0.0.1:70000", "[fe80::1%lo]:51820"} {
		if _, _, err := wgBind(bad); err == nil || !strings.Contains(err.Error(), "--wg-listen") {
			t.Errorf("wgBind(%q) = %v; want an error naming --wg-listen", bad, err)
		}
	}
	for _, all := range []string{"", ":51820", "0.0.0.0:51820", "[::]:51820"} {
		if _, b, err := wgBind(all); err != nil || b != nil {
			t.Errorf("wgBind(%q) = %v, %v; want every address (wireguard-go's bind)", all, b, err)
		}
	}
}
