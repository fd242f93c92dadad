package wireguard

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// HandshakeOnce completes one handshake, as initiator, with the peer whose
// public key is peer at addr, from a fresh socket on an ephemeral port, and
// returns the time from the first initiation to the peer's response. It
// retries every second until ctx ends, and then fails: nothing answered (a
// firewall, a wrong port) or the peer does not know priv's public key, since
// WireGuard answers nobody else. The peer's session then points at that
// socket until the key's owner sends again.
func HandshakeOnce(ctx context.Context, priv PrivateKey, peer PublicKey, addr netip.AddrPort) (time.Duration, error) {
	e, err := New(Config{PrivateKey: priv, Bind: conn.NewStdNetBind(), Workers: 1,
		Receiver: ReceiverFunc(func([]Packet) {}), Timers: Timers{RekeyTimeout: time.Second}})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	s, err := e.AddPeer(PeerConfig{PublicKey: peer, Endpoint: addr})
	if err != nil {
		return 0, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	start := time.Now()
	e.Handshake(s)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if at := s.LastHandshake(); !at.IsZero() {
			return at.Sub(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("handshake with %s: no response in %s", addr, time.Since(start).Round(100*time.Millisecond))
		case <-tick.C:
		}
	}
}
