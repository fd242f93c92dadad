package wireguard

import (
	"crypto/subtle"
	"encoding/binary"

	"golang.org/x/crypto/blake2s"
)

// Path MTU probes (issue 21, item 2) travel on the WireGuard port itself, on
// the data's 5-tuple, so that NAT and ECMP treat them as the data. Their
// first byte is 0x81..0x83 and the next three "syp", so their first
// little-endian word is never a WireGuard type (1..4). Every message is
// authenticated both ways by a keyed BLAKE2s over its header, the key
// derived from the static-static X25519 of the agent's and the edge's keys:
//
//	0   type [4]     kind, 's', 'y', 'p'
//	4   agent [32]   the agent's WireGuard public key
//	36  nonce [8]    random, chosen by the agent, echoed by the edge
//	44  size  [2]    PROBE: its padded UDP payload; ACK: the payload received; RPROBE: its own
//	46  rsize [2]    PROBE: the UDP payload of an RPROBE it asks for (0: none)
//	48  rmtu  [2]    PROBE: the edge→agent inner MTU the agent decided (0: none yet)
//	50  fmtu  [2]    PROBE: the agent→edge inner MTU the agent decided (0: none yet)
//	52  flags [1]    PROBE: probeFlagAck asks for an ACK
//	53  pad   [1]
//	54  mac   [16]   BLAKE2s-128 keyed with the probe key over bytes 0..54
//	70  zero padding up to size, not covered by the MAC
const (
	probeKindProbe  = 0x81 // agent → edge, padded, DF
	probeKindAck    = 0x82 // edge → agent, small
	probeKindRProbe = 0x83 // edge → agent, padded, DF

	probeFlagAck = 1

	probeMACOffset = 54
	// ProbeHeaderSize is the smallest probe message.
	ProbeHeaderSize = probeMACOffset + macSize

	probeLabel = "switchyard path mtu probe v1"
)

// probeMsg is a parsed probe message.
type probeMsg struct {
	kind  byte
	agent PublicKey
	nonce uint64
	size  int
	rsize int
	rmtu  int
	fmtu  int
	flags byte
}

// isProbe reports whether msg looks like a probe message (before its MAC
// is checked).
func isProbe(msg []byte) bool {
	return len(msg) >= ProbeHeaderSize && msg[0] >= probeKindProbe && msg[0] <= probeKindRProbe &&
		msg[1] == 's' && msg[2] == 'y' && msg[3] == 'p'
}

// probeKey derives the probe MAC key from the static-static X25519 shared
// secret of an agent and an edge.
func probeKey(staticStatic *[32]byte) [32]byte {
	h, _ := blake2s.New256(nil)
	h.Write([]byte(probeLabel))
	h.Write(staticStatic[:])
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// ProbeKey derives the probe MAC key an agent with private key priv shares
// with the edge whose public key is edge.
func ProbeKey(priv PrivateKey, edge PublicKey) ([32]byte, error) {
	priv.clamp()
	ss, err := dhKey(ecdhKey(&priv), (*[32]byte)(&edge))
	if err != nil {
		return [32]byte{}, err
	}
	return probeKey(&ss), nil
}

// probeMAC computes the MAC of a probe header.
func probeMAC(key *[32]byte, hdr []byte, out *[macSize]byte) {
	h, _ := blake2s.New128(key[:])
	h.Write(hdr[:probeMACOffset])
	h.Sum(out[:0])
}

// putProbe writes m's header into buf (len(buf) >= ProbeHeaderSize),
// zeroes the rest of buf and signs it with key.
func putProbe(buf []byte, m *probeMsg, key *[32]byte) {
	clear(buf)
	buf[0], buf[1], buf[2], buf[3] = m.kind, 's', 'y', 'p'
	copy(buf[4:36], m.agent[:])
	binary.LittleEndian.PutUint64(buf[36:44], m.nonce)
	binary.LittleEndian.PutUint16(buf[44:46], uint16(m.size))
	binary.LittleEndian.PutUint16(buf[46:48], uint16(m.rsize))
	binary.LittleEndian.PutUint16(buf[48:50], uint16(m.rmtu))
	binary.LittleEndian.PutUint16(buf[50:52], uint16(m.fmtu))
	buf[52] = m.flags
	var mac [macSize]byte
	probeMAC(key, buf, &mac)
	copy(buf[probeMACOffset:], mac[:])
}

// parseProbe reads a probe header without checking its MAC.
func parseProbe(msg []byte) (probeMsg, bool) {
	if !isProbe(msg) {
		return probeMsg{}, false
	}
	var m probeMsg
	m.kind = msg[0]
	copy(m.agent[:], msg[4:36])
	m.nonce = binary.LittleEndian.Uint64(msg[36:44])
	m.size = int(binary.LittleEndian.Uint16(msg[44:46]))
	m.rsize = int(binary.LittleEndian.Uint16(msg[46:48]))
	m.rmtu = int(binary.LittleEndian.Uint16(msg[48:50]))
	m.fmtu = int(binary.LittleEndian.Uint16(msg[50:52]))
	m.flags = msg[52]
	return m, true
}

// checkProbeMAC reports whether msg's MAC is right under key.
func checkProbeMAC(msg []byte, key *[32]byte) bool {
	var mac [macSize]byte
	probeMAC(key, msg, &mac)
	return subtle.ConstantTimeCompare(mac[:], msg[probeMACOffset:ProbeHeaderSize]) == 1
}
