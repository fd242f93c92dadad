package wireguard

import (
	"crypto/rand"
	"crypto/subtle"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// cookieChecker validates the macs on handshake messages sent to us and
// makes cookie replies (WireGuard paper section 5.4.7).
type cookieChecker struct {
	mac1Key   [32]byte // HASH(LABEL_MAC1 || our public key)
	cookieKey [32]byte // HASH(LABEL_COOKIE || our public key)

	mu        sync.Mutex
	secret    [32]byte
	secretSet int64
	hasSecret bool
}

func (c *cookieChecker) init(pub PublicKey) {
	c.mac1Key = labelHash(wgLabelMAC1, pub[:])
	c.cookieKey = labelHash(wgLabelCookie, pub[:])
}

// checkMAC1 reports whether msg (an initiation or response) carries a
// valid mac1 for our public key. h is a BLAKE2s-128 keyed with mac1Key
// that the caller owns (so that the check does not allocate) and sum is
// scratch space.
func checkMAC1(h hash.Hash, sum *[macSize]byte, msg []byte) bool {
	n := len(msg)
	h.Reset()
	h.Write(msg[:n-2*macSize])
	h.Sum(sum[:0])
	return subtle.ConstantTimeCompare(sum[:], msg[n-2*macSize:n-macSize]) == 1
}

// cookieFor returns the current cookie for a source address.
func (c *cookieChecker) cookieFor(src []byte, now, refresh int64) (ck [macSize]byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hasSecret || now-c.secretSet >= refresh {
		return ck, false
	}
	mac16(&ck, c.secret[:], src)
	return ck, true
}

// checkMAC2 reports whether msg carries a mac2 made with a cookie we
// handed to src recently.
func (c *cookieChecker) checkMAC2(msg, src []byte, now, refresh int64) bool {
	ck, ok := c.cookieFor(src, now, refresh)
	if !ok {
		return false
	}
	n := len(msg)
	var m [macSize]byte
	mac16(&m, ck[:], msg[:n-macSize])
	return subtle.ConstantTimeCompare(m[:], msg[n-macSize:]) == 1
}

// createReply makes a cookie reply to msg, which came from src.
func (c *cookieChecker) createReply(msg, src []byte, now, refresh int64) (out [cookieReplySize]byte, err error) {
	c.mu.Lock()
	if !c.hasSecret || now-c.secretSet >= refresh {
		if _, err := rand.Read(c.secret[:]); err != nil {
			c.mu.Unlock()
			return out, err
		}
		c.secretSet, c.hasSecret = now, true
	}
	var ck [macSize]byte
	mac16(&ck, c.secret[:], src)
	c.mu.Unlock()

	var m cookieReplyMsg
	m.receiver = le32(msg[4:])
	if _, err := rand.Read(m.nonce[:]); err != nil {
		return out, err
	}
	n := len(msg)
	x, _ := chacha20poly1305.NewX(c.cookieKey[:])
	x.Seal(m.cookie[:0], m.nonce[:], ck[:], msg[n-2*macSize:n-macSize])
	m.marshal(&out)
	return out, nil
}

// addMACsLocked fills in mac1 and, with a fresh cookie, mac2 of a message
// we send to s; s.mu held.
func (s *Session) addMACsLocked(msg []byte, now int64) {
	n := len(msg)
	var m [macSize]byte
	mac1Key := labelHash(wgLabelMAC1, s.key[:]) // not kept: 32 bytes a session
	mac16(&m, mac1Key[:], msg[:n-2*macSize])
	copy(msg[n-2*macSize:], m[:])
	s.hs.lastMAC1 = m
	if s.hs.hasCookie && now-s.hs.cookieTime < int64(s.e.t.CookieRefreshTime) {
		mac16(&m, s.hs.cookie[:], msg[:n-macSize])
		copy(msg[n-macSize:], m[:])
	} else {
		clear(msg[n-macSize:])
	}
}

// consumeCookieReplyLocked stores the cookie in a reply from s; s.mu held.
func (s *Session) consumeCookieReplyLocked(m *cookieReplyMsg, now int64) bool {
	cookieKey := labelHash(wgLabelCookie, s.key[:])
	x, _ := chacha20poly1305.NewX(cookieKey[:])
	var ck [macSize]byte
	if _, err := x.Open(ck[:0], m.nonce[:], m.cookie[:], s.hs.lastMAC1[:]); err != nil {
		return false
	}
	s.hs.cookie, s.hs.cookieTime, s.hs.hasCookie = ck, now, true
	return true
}

func le32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
