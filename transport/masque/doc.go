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
// Path MTU: both sides start QUIC at 1232-byte packets, which cross any path
// that carries IPv6 (and any IPv4 path of 1260 bytes or more), and quic-go's
// path MTU discovery, with DF, grows them; Session.MTU is the inner MTU this
// allows now (MinMTU at first, MTU on a 1500-byte path) and NotifyMTU
// reports its changes, so the edge's router and the agent's TUN answer
// larger packets with ICMP at the right MTU. A packet above it is refused
// with ErrTooBig, counted and logged, never dropped silently.
//
// Limits: QUIC never fragments, so a path of less than about 1350 bytes
// (IPv4; 1370 over IPv6) cannot carry 1280-byte inner IPv6 packets over
// MASQUE at all: they are refused (ErrTooBig), and full-size IPv6 on such a
// path needs WireGuard, whose outer datagrams may fragment (agents in auto
// mode prefer it whenever its UDP port passes). quic-go v0.65 ignores ICMP
// (it sends with IP_PMTUDISC_PROBE) and never lowers its packet size when a
// path shrinks mid-session: full-size datagrams are then lost until the
// session is redialed (the server starts over after a NAT rebinding). The
// agent notices: every 2 s one of its heartbeats goes padded to MTU(), and
// when three in a row are lost while small ones pass it closes the session
// and dials a new one, which starts at 1232 again (agent/shrink.go). That
// probes the agent→edge direction only: a path that shrinks toward the
// agent alone stays black-holed for full-size packets until a redial.
//
// It imports neither the router, the control plane, netlink nor gVisor: the
// edge and the agent plug in authentication and packet handling.
package masque
