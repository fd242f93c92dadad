package masque

import (
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

// packetSize is the QUIC packet size both sides start with and never go
// below: quic-go's default (1280, with PMTUD growing it later) leaves room for
// inner packets of only about 1230 bytes, and SendDatagram rejects larger
// ones until discovery catches up, so a TUN MTU of 1280 or more would lose
// packets. 1452 is the most a 1500-byte path carries over IPv6 (1500 - 40 -
// 8) and the most quic-go accepts.
const packetSize = 1452

// MTU is the largest inner IP packet that fits one QUIC datagram of
// packetSize: the short header (1 byte, a connection id of up to 20, a packet
// number of up to 4), the AEAD tag (16), the DATAGRAM frame's type and length
// (1 + 2), the quarter stream id and context id of RFC 9297/9484 (up to 2 for
// the first streams), at their largest; quic-go between quic-go peers (4-byte
// connection ids) takes 7 bytes more. Agents set their TUN's MTU to at most
// this on the MASQUE path; TestSessionCapsulesAndPackets sends a packet of
// this size.
const MTU = packetSize - 1 - 20 - 4 - 16 - 3 - 2

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
		InitialPacketSize: packetSize,
		// The path MTU is already assumed; discovery would only probe above
		// 1452, which quic-go never sends.
		DisablePathMTUDiscovery: true,
		KeepAlivePeriod:         keepAlive,
		MaxIdleTimeout:          idleTimeout,
		HandshakeIdleTimeout:    5 * time.Second,
	}
}
