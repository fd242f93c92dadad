package wireguard

import (
	"encoding/binary"

	"golang.org/x/crypto/chacha20poly1305"
)

// Message types, as the first little-endian 32-bit word of each message.
const (
	msgTypeInitiation  = 1
	msgTypeResponse    = 2
	msgTypeCookieReply = 3
	msgTypeTransport   = 4
)

// Message sizes.
const (
	initiationSize      = 148
	responseSize        = 92
	cookieReplySize     = 64
	transportHeaderSize = 16
	keepaliveSize       = transportHeaderSize + chacha20poly1305.Overhead

	// MaxMessageSize is the largest UDP payload the endpoint reads.
	MaxMessageSize = 65535
	// Headroom is the space in front of a packet that Send needs to write
	// the transport header in place; received packets come with it.
	Headroom = transportHeaderSize
	// Tailroom is the spare capacity after a packet that Send needs to pad
	// and seal it in place (up to 15 bytes of padding plus a 16-byte tag).
	Tailroom = paddingMultiple - 1 + chacha20poly1305.Overhead
	// MaxPacketSize is the largest IP packet a transport message can carry.
	MaxPacketSize = MaxMessageSize - transportHeaderSize - chacha20poly1305.Overhead

	paddingMultiple = 16
	macSize         = 16
	// maxFraming bounds PeerConfig.Framing and Config.ReceiveHeadroom.
	maxFraming = 256
)

// initiationMsg is a parsed handshake initiation.
type initiationMsg struct {
	sender    uint32
	ephemeral [32]byte
	static    [32 + chacha20poly1305.Overhead]byte
	timestamp [12 + chacha20poly1305.Overhead]byte
	mac1      [macSize]byte
	mac2      [macSize]byte
}

// responseMsg is a parsed handshake response.
type responseMsg struct {
	sender    uint32
	receiver  uint32
	ephemeral [32]byte
	empty     [chacha20poly1305.Overhead]byte
	mac1      [macSize]byte
	mac2      [macSize]byte
}

// cookieReplyMsg is a parsed cookie reply.
type cookieReplyMsg struct {
	receiver uint32
	nonce    [chacha20poly1305.NonceSizeX]byte
	cookie   [macSize + chacha20poly1305.Overhead]byte
}

// transportHeader is the fixed part of a transport data message.
type transportHeader struct {
	receiver uint32
	counter  uint64
}

func msgType(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// parseInitiation decodes b, which must be exactly one initiation message.
func parseInitiation(b []byte) (m initiationMsg, ok bool) {
	if len(b) != initiationSize || msgType(b) != msgTypeInitiation {
		return m, false
	}
	m.sender = binary.LittleEndian.Uint32(b[4:])
	copy(m.ephemeral[:], b[8:40])
	copy(m.static[:], b[40:88])
	copy(m.timestamp[:], b[88:116])
	copy(m.mac1[:], b[116:132])
	copy(m.mac2[:], b[132:148])
	return m, true
}

func (m *initiationMsg) marshal(b *[initiationSize]byte) {
	binary.LittleEndian.PutUint32(b[0:], msgTypeInitiation)
	binary.LittleEndian.PutUint32(b[4:], m.sender)
	copy(b[8:40], m.ephemeral[:])
	copy(b[40:88], m.static[:])
	copy(b[88:116], m.timestamp[:])
	copy(b[116:132], m.mac1[:])
	copy(b[132:148], m.mac2[:])
}

// parseResponse decodes b, which must be exactly one response message.
func parseResponse(b []byte) (m responseMsg, ok bool) {
	if len(b) != responseSize || msgType(b) != msgTypeResponse {
		return m, false
	}
	m.sender = binary.LittleEndian.Uint32(b[4:])
	m.receiver = binary.LittleEndian.Uint32(b[8:])
	copy(m.ephemeral[:], b[12:44])
	copy(m.empty[:], b[44:60])
	copy(m.mac1[:], b[60:76])
	copy(m.mac2[:], b[76:92])
	return m, true
}

func (m *responseMsg) marshal(b *[responseSize]byte) {
	binary.LittleEndian.PutUint32(b[0:], msgTypeResponse)
	binary.LittleEndian.PutUint32(b[4:], m.sender)
	binary.LittleEndian.PutUint32(b[8:], m.receiver)
	copy(b[12:44], m.ephemeral[:])
	copy(b[44:60], m.empty[:])
	copy(b[60:76], m.mac1[:])
	copy(b[76:92], m.mac2[:])
}

// parseCookieReply decodes b, which must be exactly one cookie reply.
func parseCookieReply(b []byte) (m cookieReplyMsg, ok bool) {
	if len(b) != cookieReplySize || msgType(b) != msgTypeCookieReply {
		return m, false
	}
	m.receiver = binary.LittleEndian.Uint32(b[4:])
	copy(m.nonce[:], b[8:32])
	copy(m.cookie[:], b[32:64])
	return m, true
}

func (m *cookieReplyMsg) marshal(b *[cookieReplySize]byte) {
	binary.LittleEndian.PutUint32(b[0:], msgTypeCookieReply)
	binary.LittleEndian.PutUint32(b[4:], m.receiver)
	copy(b[8:32], m.nonce[:])
	copy(b[32:64], m.cookie[:])
}

// parseTransportHeader decodes the header of a transport message; b must be
// at least a keepalive long and no longer than MaxMessageSize.
func parseTransportHeader(b []byte) (h transportHeader, ok bool) {
	if len(b) < keepaliveSize || len(b) > MaxMessageSize || msgType(b) != msgTypeTransport {
		return h, false
	}
	h.receiver = binary.LittleEndian.Uint32(b[4:])
	h.counter = binary.LittleEndian.Uint64(b[8:])
	return h, true
}

func putTransportHeader(b []byte, receiver uint32, counter uint64) {
	_ = b[15]
	binary.LittleEndian.PutUint32(b[0:], msgTypeTransport)
	binary.LittleEndian.PutUint32(b[4:], receiver)
	binary.LittleEndian.PutUint64(b[8:], counter)
}

// ipPacketLen returns the length of the IP packet at the start of b as its
// header states it, or 0 if b does not start with a well-formed IPv4 or
// IPv6 header that fits in b.
func ipPacketLen(b []byte) int {
	if len(b) < 1 {
		return 0
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return 0
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < 20 || n > len(b) {
			return 0
		}
		return n
	case 6:
		if len(b) < 40 {
			return 0
		}
		n := 40 + int(binary.BigEndian.Uint16(b[4:]))
		if n > len(b) {
			return 0
		}
		return n
	}
	return 0
}
