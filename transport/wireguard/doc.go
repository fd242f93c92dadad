// Package wireguard is the edge's own WireGuard endpoint: it speaks the
// WireGuard protocol (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshakes,
// cookies, transport data, timers) over a batched UDP conn.Bind and hands
// every decrypted packet to the router tagged with the Session that sent it,
// so that the edge can route per peer without a kernel TUN.
//
// Allowed imports: the standard library, golang.org/x/crypto,
// golang.org/x/sys, and wireguard-go's exported helper packages (conn,
// replay, tai64n, ratelimiter). It must not import netlink, gVisor (tests
// may), anything under control/, or wireguard-go's device package outside
// tests.
package wireguard
