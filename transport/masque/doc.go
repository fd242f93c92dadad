// Package masque carries IP packets over CONNECT-IP (RFC 9484) in HTTP/3,
// for networks that block WireGuard's UDP port but let QUIC on 443 through.
// It holds both sides: Server, which the edge runs next to its WireGuard
// endpoint and which hands every authenticated Session to the edge's router,
// and Dial, which an agent uses instead of wireguard-go.
//
// It wraps github.com/quic-go/connect-ip-go and quic-go and handles their
// pitfalls in one place: the QUIC packet size that inner packets need (MTU),
// a dedicated reader per session so the library's small datagram queue is
// drained at once, and WritePacket's in-place TTL decrement (Session.WritePacket).
//
// It imports neither the router, the control plane, netlink nor gVisor: the
// edge and the agent plug in authentication and packet handling.
package masque
