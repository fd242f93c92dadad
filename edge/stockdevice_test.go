package edge

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// stockPeer is a wireguard-go device configured as a stock WireGuard client
// with no persistent keepalive: it sends no heartbeats and stays silent
// when it has nothing to send.
func stockPeer(t *testing.T, edgeKey wireguard.PublicKey, edgePort uint16) *agentPeer {
	t.Helper()
	priv, err := wireguard.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	ct := tuntest.NewChannelTUN()
	dev := device.NewDevice(ct.TUN(), conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	cfg := fmt.Sprintf("private_key=%s\npublic_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=0.0.0.0/0\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(edgeKey[:]), edgePort)
	if err := dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey()
	return &agentPeer{tun: ct, dev: dev, key: base64.StdEncoding.EncodeToString(pub[:])}
}

// TestStockDeviceLivesWithoutHeartbeats: a device registered by its key
// that never sends a heartbeat stays reachable after being silent for far
// longer than livenessTimeout, since its WireGuard session is still valid;
// the API's last handshake names it; revoking it cuts it off.
func TestStockDeviceLivesWithoutHeartbeats(t *testing.T) {
	l := newEdgeLab(t)
	c := l.connector(t, "site-c", "", "10.3.0.0/16")
	phone := stockPeer(t, l.dp.ep.PublicKey(), l.dp.ep.Port())
	d, err := l.reg.RegisterDevice(context.Background(), model.RegisterDevice{Name: "phone", PublicKey: phone.key})
	if err != nil {
		t.Fatal(err)
	}
	ip := d.IP.String()
	eventually(t, "the device's peer is authorized", 5*time.Second, func() bool {
		l.dp.mu.Lock()
		defer l.dp.mu.Unlock()
		return l.dp.byKey[mustKey(t, phone.key)] != nil
	})

	// The device speaks first (a stock client only answers the edge once
	// it has a session): its ping reaches site C with its overlay source.
	deadline := time.Now().Add(10 * time.Second)
	for {
		phone.send(t, ping("10.3.0.5", ip))
		if p := c.recv(200 * time.Millisecond); p != nil && len(p) >= 20 && netip.AddrFrom4([4]byte(p[12:16])).String() == ip {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stock device's ping never reached site C")
		}
	}
	if hs := l.dp.lastHandshakes()[d.ID]; hs.IsZero() || time.Since(hs) > time.Minute {
		t.Fatalf("last handshake of the device: %v", hs)
	}

	// Silent for twice livenessTimeout: still up, and site C reaches it.
	time.Sleep(2 * livenessTimeout)
	c.send(t, ping(ip, "10.3.0.5"))
	if !echoFrom(phone, "10.3.0.5", 2*time.Second) {
		t.Fatalf("site C's ping did not reach a stock device silent for %v (its WireGuard session is valid)", 2*livenessTimeout)
	}

	// Revoked: cut off at once.
	if _, err := l.reg.RevokeDevice(context.Background(), "phone"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revoked device leaves the directory", 5*time.Second, func() bool {
		l.dp.mu.Lock()
		defer l.dp.mu.Unlock()
		return l.dp.byKey[mustKey(t, phone.key)] == nil
	})
	c.send(t, ping(ip, "10.3.0.5"))
	if echoFrom(phone, "10.3.0.5", 500*time.Millisecond) {
		t.Fatal("a revoked stock device still got site C's ping")
	}
}

// echoFrom reports whether a receives an ICMP echo request from src within
// d, skipping anything else (ICMP errors for its first pings, sent before
// the edge had site C's session up).
func echoFrom(a *agentPeer, src string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case p := <-a.tun.Inbound:
			if len(p) >= 21 && p[0]>>4 == 4 && p[9] == 1 && p[20] == 8 && netip.AddrFrom4([4]byte(p[12:16])).String() == src {
				return true
			}
		case <-deadline:
			return false
		}
	}
}
