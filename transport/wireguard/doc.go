// Package wireguard is the edge's own WireGuard endpoint: it speaks the
// WireGuard protocol (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshakes,
// cookies, transport data, timers) over a batched UDP conn.Bind and hands
// every decrypted packet to the router tagged with the Session that sent it,
// so that the edge can route per peer without a kernel TUN.
//
// Data path: one goroutine per receive function of the Bind (OffloadBind
// on Linux) reads batches (recvmmsg, UDP GRO), looks each transport message
// up in a map-free receiver-index table, decrypts the batch in place (on
// the crypto workers too only when the batch is large and cores are spare:
// spare.go), checks replay counters in order and calls Receiver.Receive
// once per batch. Send encrypts a batch in place the same way and writes it
// with one Bind.Send (sendmmsg, UDP GSO). Neither allocates.
// Handshake messages are checked for mac1 on the receive goroutine and
// answered by a bounded pool of handshake workers; under load they are rate
// limited per source address and need a valid mac2 (cookie replies). One
// timer goroutine runs retransmission, rekeying, expiry and keepalives for
// all sessions from a hashed timer wheel: a tick touches only the sessions
// whose next deadline falls in it, so an idle established session costs a
// look every KeepaliveTimeout; the packet path never touches the wheel.
//
// The peer directory (AddPeer, RemovePeer, SetPeers) is the only source of
// authorization: a key is accepted from the moment it is added, and its
// keys and queued packets are dropped the moment it is removed.
//
// Allowed imports: the standard library, golang.org/x/crypto,
// golang.org/x/sys, golang.org/x/net/ipv4 and ipv6 (AddrBind's batches, as
// wireguard-go's conn uses them), and wireguard-go's exported helper
// packages (conn, replay, tai64n, ratelimiter). It must not import netlink, gVisor (tests
// may), anything under control/, or wireguard-go's device package outside
// tests. The netns test needs root and the wireguard-tools, wireguard-go,
// iproute2 and iputils-ping packages; it skips without them.
package wireguard
