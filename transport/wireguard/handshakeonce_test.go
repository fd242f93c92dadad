package wireguard

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// TestHandshakeOnce: a responder that knows the key answers, and the
// session it keeps is the initiator's; one that does not, or a port where
// nothing listens, gives an error once the context ends.
func TestHandshakeOnce(t *testing.T) {
	goroutineLeakCheck(t)
	agent, other := mustKey(t), mustKey(t)
	edge := newTestEndpoint(t, Config{PrivateKey: mustKey(t), Bind: conn.NewStdNetBind(), Receiver: ReceiverFunc(func([]Packet) {})})
	s, err := edge.AddPeer(PeerConfig{PublicKey: agent.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, err := HandshakeOnce(ctx, agent, edge.PublicKey(), addrPort("127.0.0.1", edge.Port()))
	if err != nil || rtt <= 0 {
		t.Fatalf("known key: rtt %s, %v", rtt, err)
	}
	// The responder takes the handshake as done when the initiator's
	// keepalive arrives, which HandshakeOnce sends but does not wait for.
	waitFor(t, 2*time.Second, "the responder's session of the key to see the handshake", func() bool { return !s.LastHandshake().IsZero() })

	short, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	if _, err := HandshakeOnce(short, other, edge.PublicKey(), addrPort("127.0.0.1", edge.Port())); err == nil || !strings.Contains(err.Error(), "no response") {
		t.Errorf("unknown key: %v, want no response", err)
	}
	port := edge.Port()
	edge.Close()
	short, cancel3 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel3()
	if _, err := HandshakeOnce(short, agent, edge.PublicKey(), addrPort("127.0.0.1", port)); err == nil {
		t.Error("closed port: no error")
	}
}
