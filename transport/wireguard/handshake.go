package wireguard

import (
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.zx2c4.com/wireguard/tai64n"
)

var zeroNonce [chacha20poly1305.NonceSize]byte

var (
	errHandshakeAuth  = errors.New("handshake authentication failed")
	errUnknownPeer    = errors.New("handshake from unauthorized key")
	errIndexExhausted = errors.New("receiver index table full")
	errNoHandshake    = errors.New("no handshake in progress")
)

func aeadSeal(key *[32]byte, dst, plain, ad []byte) {
	a, _ := chacha20poly1305.New(key[:])
	a.Seal(dst[:0], zeroNonce[:], plain, ad)
}

func aeadOpen(key *[32]byte, dst, ct, ad []byte) error {
	a, _ := chacha20poly1305.New(key[:])
	_, err := a.Open(dst[:0], zeroNonce[:], ct, ad)
	return err
}

// newKeypair derives a keypair from the final chaining key.
func newKeypair(s *Session, chainKey *[32]byte, initiator bool, now int64) *keypair {
	var k1, k2 [32]byte
	kdf2(&k1, &k2, chainKey[:], nil)
	send, recv := &k1, &k2
	if !initiator {
		send, recv = recv, send
	}
	kp := &keypair{created: now, isInitiator: initiator, sess: s}
	kp.send, _ = chacha20poly1305.New(send[:])
	kp.recv, _ = chacha20poly1305.New(recv[:])
	clear(k1[:])
	clear(k2[:])
	return kp
}

// createInitiationLocked starts a handshake with s as initiator; s.mu held.
func (e *Endpoint) createInitiationLocked(s *Session, now int64) (out [initiationSize]byte, err error) {
	hs := s.hs.init
	if hs != nil { // a retransmission: a new ephemeral key and index
		e.index.remove(hs.localIndex)
		s.hs.init = nil
	} else {
		hs = new(initiation)
	}
	defer func() {
		if err != nil {
			clear(hs.ephemeral[:])
		}
	}()
	hs.chainKey = initialChainKey
	mixHash(&hs.hash, &initialHash, s.key[:])
	if hs.ephemeral, err = GeneratePrivateKey(); err != nil {
		return out, err
	}
	var m initiationMsg
	m.ephemeral = hs.ephemeral.PublicKey()
	mixHash(&hs.hash, &hs.hash, m.ephemeral[:])
	kdf1(&hs.chainKey, hs.chainKey[:], m.ephemeral[:])
	ss, err := dh(&hs.ephemeral, (*[32]byte)(&s.key))
	if err != nil {
		return out, err
	}
	var key [32]byte
	kdf2(&hs.chainKey, &key, hs.chainKey[:], ss[:])
	aeadSeal(&key, m.static[:], e.pub[:], hs.hash[:])
	mixHash(&hs.hash, &hs.hash, m.static[:])
	kdf2(&hs.chainKey, &key, hs.chainKey[:], s.staticStatic[:])
	ts := tai64n.Now()
	aeadSeal(&key, m.timestamp[:], ts[:], hs.hash[:])
	mixHash(&hs.hash, &hs.hash, m.timestamp[:])
	clear(key[:])
	ent, ok := e.index.insert(s, nil)
	if !ok {
		return out, errIndexExhausted
	}
	hs.localIndex = ent.index
	s.hs.init = hs
	m.sender = ent.index
	m.marshal(&out)
	s.addMACsLocked(out[:], now)
	return out, nil
}

// consumedInitiation is the responder's state after reading an initiation.
type consumedInitiation struct {
	sess      *Session
	hash      [32]byte
	chainKey  [32]byte
	timestamp tai64n.Timestamp
	sender    uint32
	ephemeral [32]byte
}

// consumeInitiation authenticates an initiation and finds its peer.
func (e *Endpoint) consumeInitiation(m *initiationMsg) (c consumedInitiation, err error) {
	c.chainKey = initialChainKey
	mixHash(&c.hash, &initialHash, e.pub[:])
	mixHash(&c.hash, &c.hash, m.ephemeral[:])
	kdf1(&c.chainKey, c.chainKey[:], m.ephemeral[:])
	ss, err := dhKey(e.key, &m.ephemeral)
	if err != nil {
		return c, errHandshakeAuth
	}
	var key [32]byte
	kdf2(&c.chainKey, &key, c.chainKey[:], ss[:])
	var peerKey PublicKey
	if aeadOpen(&key, peerKey[:], m.static[:], c.hash[:]) != nil {
		return c, errHandshakeAuth
	}
	mixHash(&c.hash, &c.hash, m.static[:])
	s := e.lookupPeer(peerKey)
	if s == nil {
		return c, errUnknownPeer
	}
	kdf2(&c.chainKey, &key, c.chainKey[:], s.staticStatic[:])
	if aeadOpen(&key, c.timestamp[:], m.timestamp[:], c.hash[:]) != nil {
		return c, errHandshakeAuth
	}
	mixHash(&c.hash, &c.hash, m.timestamp[:])
	clear(key[:])
	c.sess = s
	c.sender = m.sender
	c.ephemeral = m.ephemeral
	return c, nil
}

// createResponseLocked answers a consumed initiation and returns the new
// (unconfirmed) keypair; s.mu held.
func (e *Endpoint) createResponseLocked(c *consumedInitiation, now int64) (out [responseSize]byte, kp *keypair, err error) {
	s := c.sess
	eph, err := GeneratePrivateKey()
	if err != nil {
		return out, nil, err
	}
	ek := ecdhKey(&eph) // its public key, and two DHs of one multiplication each
	var m responseMsg
	m.receiver = c.sender
	m.ephemeral = [32]byte(ek.PublicKey().Bytes())
	mixHash(&c.hash, &c.hash, m.ephemeral[:])
	kdf1(&c.chainKey, c.chainKey[:], m.ephemeral[:])
	ss, err := dhKey(ek, &c.ephemeral)
	if err != nil {
		return out, nil, errHandshakeAuth
	}
	kdf1(&c.chainKey, c.chainKey[:], ss[:])
	ss, err = dhKey(ek, (*[32]byte)(&s.key))
	if err != nil {
		return out, nil, errHandshakeAuth
	}
	kdf1(&c.chainKey, c.chainKey[:], ss[:])
	clear(eph[:])
	var tau, key [32]byte
	kdf3(&c.chainKey, &tau, &key, c.chainKey[:], s.presharedKeyLocked()[:])
	mixHash(&c.hash, &c.hash, tau[:])
	aeadSeal(&key, m.empty[:], nil, c.hash[:])
	clear(key[:])
	kp = newKeypair(s, &c.chainKey, false, now)
	kp.remoteIndex = c.sender
	ent, ok := e.index.insert(s, kp)
	if !ok {
		return out, nil, errIndexExhausted
	}
	kp.localIndex = ent.index
	m.sender = ent.index
	m.marshal(&out)
	s.addMACsLocked(out[:], now)
	return out, kp, nil
}

// consumeResponseLocked completes a handshake we initiated; s.mu held.
func (e *Endpoint) consumeResponseLocked(s *Session, m *responseMsg, now int64) (*keypair, error) {
	hs := s.hs.init
	if hs == nil || hs.localIndex != m.receiver {
		return nil, errNoHandshake
	}
	hash, chainKey := hs.hash, hs.chainKey
	mixHash(&hash, &hash, m.ephemeral[:])
	kdf1(&chainKey, chainKey[:], m.ephemeral[:])
	ss, err := dh(&hs.ephemeral, &m.ephemeral)
	if err != nil {
		return nil, errHandshakeAuth
	}
	kdf1(&chainKey, chainKey[:], ss[:])
	ss, err = dhKey(e.key, &m.ephemeral)
	if err != nil {
		return nil, errHandshakeAuth
	}
	kdf1(&chainKey, chainKey[:], ss[:])
	var tau, key [32]byte
	kdf3(&chainKey, &tau, &key, chainKey[:], s.presharedKeyLocked()[:])
	mixHash(&hash, &hash, tau[:])
	if aeadOpen(&key, nil, m.empty[:], hash[:]) != nil {
		return nil, errHandshakeAuth
	}
	kp := newKeypair(s, &chainKey, true, now)
	kp.localIndex = hs.localIndex
	kp.remoteIndex = m.sender
	if !e.index.replace(hs.localIndex, s, kp) {
		return nil, errNoHandshake
	}
	clear(hs.ephemeral[:])
	s.hs.init = nil
	return kp, nil
}
