package masque

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Authority is the :authority every CONNECT-IP request names and Template the
// URI template the server answers; agents reach the edge by address and pin
// its CA, so the name is a constant rather than the edge's host name.
const (
	Authority = "masque.switchyard.invalid"
	Path      = "/.well-known/masque/ip/"
	Template  = "https://" + Authority + Path
)

// ConnectorHeader carries a connector's id next to its tunnel token in the
// Authorization header (a device's credential names the device itself).
const ConnectorHeader = "Switchyard-Connector"

// DefaultPort is the UDP port the edge serves MASQUE on unless told otherwise.
const DefaultPort = 443

// Packet sizes. Both sides start at initialPacketSize, which crosses every
// path that carries IPv6 at all (1280 - 40 - 8; an IPv4 path of 576 does not
// carry QUIC, whose minimum is 1200), so that the handshake completes behind
// a hop that silently drops anything larger. quic-go's path MTU discovery
// (binary search with probes sent with DF) then grows the size toward
// maxPacketSize, the most quic-go sends (1500 - 40 - 8). Its search stops
// within 21 bytes of its bound and never probes the bound itself, so on a
// path that carries maxPacketSize it ends at fullPathPacketSize (probes of
// 1342, 1397, 1424 and 1438 bytes all confirmed).
const (
	initialPacketSize  = 1232
	maxPacketSize      = 1452
	fullPathPacketSize = 1438
)

// Per-datagram overhead. quicOverhead is what quic-go subtracts from its
// packet size for a DATAGRAM payload (estimateMaxPayloadSize: type byte,
// a connection id of up to 20 bytes, AEAD tag; its 4-byte connection ids
// leave room for the packet number and frame header). datagramOverhead is
// RFC 9297's quarter stream id (1 byte for the first 64 streams, where a
// connection's one CONNECT-IP request lives) and RFC 9484's context id 0.
const (
	quicOverhead     = 1 + 20 + 16
	datagramOverhead = 1 + 1
)

// MTU is the ceiling of a session's inner MTU: the largest inner IP packet
// one datagram carries once discovery has confirmed fullPathPacketSize,
// which every 1500-byte path does. A session's current inner MTU
// (Session.MTU) starts at MinMTU and grows to at most this.
const MTU = fullPathPacketSize - quicOverhead - datagramOverhead

// MinMTU is the inner MTU every session starts with, before path MTU
// discovery has confirmed anything larger: what a datagram of
// initialPacketSize holds. It is below IPv6's minimum link MTU of 1280, and
// a path of less than about 1350 bytes (IPv4) or 1370 (IPv6) never carries
// 1280-byte inner packets over MASQUE: QUIC never fragments, so such paths
// need WireGuard for full-size IPv6 (see Session.MTU).
const MinMTU = initialPacketSize - quicOverhead - datagramOverhead

// keepAlive and idleTimeout decide how fast a dead path is noticed: the agent
// pings every keepAlive, and either side drops the session after idleTimeout
// of silence (the edge then stops routing to it).
const (
	keepAlive   = time.Second
	idleTimeout = 5 * time.Second
)

// quicConfig is the QUIC configuration of both sides.
func quicConfig() *quic.Config {
	return &quic.Config{
		EnableDatagrams:   true,
		InitialPacketSize: initialPacketSize,
		// Discovery stays on: it is what lifts the packet size above
		// initialPacketSize (TestPathMTUDiscoveryGrows fails without it).
		DisablePathMTUDiscovery: false,
		KeepAlivePeriod:         keepAlive,
		MaxIdleTimeout:          idleTimeout,
		HandshakeIdleTimeout:    5 * time.Second,
	}
}

// connIDLen is the length of the connection ids both sides choose, so that
// a QUIC packet carrying one datagram of the largest payload quic-go accepts
// (SendDatagram, estimated with a 20-byte connection id: quicOverhead) is
// exactly the connection's packet size: 1 type byte + connIDLen + a 2-byte
// packet number (what quic-go writes while fewer than 2^15 packets are
// unacknowledged) + 1 DATAGRAM frame type byte (the last frame has no
// length) + payload + 16-byte tag. quic-go batches packets into one GSO send
// only while each is exactly that size (sendPacketsWithGSO: "the last packet
// appended was a full-size packet"); with its default 4-byte ids a
// full-size inner packet leaves 13 bytes unused and every packet is a
// system call of its own.
const connIDLen = 1 + 20 - 2 - 1 - 1

// newTransport is the QUIC transport of both sides on pc, with connIDLen,
// reading with UDP_GRO (groConn) where pc is a UDP socket that takes it.
func newTransport(pc net.PacketConn) *quic.Transport {
	if u, ok := pc.(*net.UDPConn); ok {
		pc = withGRO(u)
	}
	return &quic.Transport{Conn: pc, ConnectionIDLength: connIDLen}
}

// connKey is the request context's key for the connState of the QUIC
// connection a request arrived on (Server.connContext puts it there).
type connKey struct{}

// connState is what the server knows of one QUIC connection.
type connState struct {
	conn   *quic.Conn
	authed atomic.Bool // a request on it has authenticated
}
