package wireguard

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/curve25519"
)

// Protocol names hashed into the initial chaining key and hash.
const (
	noiseConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	wgIdentifier      = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	wgLabelMAC1       = "mac1----"
	wgLabelCookie     = "cookie--"
)

var (
	initialChainKey [blake2s.Size]byte
	initialHash     [blake2s.Size]byte
)

func init() {
	initialChainKey = blake2s.Sum256([]byte(noiseConstruction))
	mixHash(&initialHash, &initialChainKey, []byte(wgIdentifier))
}

var errLowOrderPoint = errors.New("curve25519: low order point")

// mixHash sets dst = HASH(h || data).
func mixHash(dst, h *[blake2s.Size]byte, data []byte) {
	d, _ := blake2s.New256(nil)
	d.Write(h[:])
	d.Write(data)
	d.Sum(dst[:0])
}

// labelHash returns HASH(label || key), the mac1 and cookie keys.
func labelHash(label string, key []byte) [blake2s.Size]byte {
	d, _ := blake2s.New256(nil)
	d.Write([]byte(label))
	d.Write(key)
	var out [blake2s.Size]byte
	d.Sum(out[:0])
	return out
}

func newBlake2s() hash.Hash {
	h, _ := blake2s.New256(nil)
	return h
}

func hmacSum(dst *[blake2s.Size]byte, key []byte, in ...[]byte) {
	m := hmac.New(newBlake2s, key)
	for _, b := range in {
		m.Write(b)
	}
	m.Sum(dst[:0])
}

// kdf1 sets t0 = KDF1(key, input).
func kdf1(t0 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmacSum(&prk, key, input)
	hmacSum(t0, prk[:], []byte{1})
	clear(prk[:])
}

// kdf2 sets (t0, t1) = KDF2(key, input).
func kdf2(t0, t1 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmacSum(&prk, key, input)
	hmacSum(t0, prk[:], []byte{1})
	hmacSum(t1, prk[:], t0[:], []byte{2})
	clear(prk[:])
}

// kdf3 sets (t0, t1, t2) = KDF3(key, input).
func kdf3(t0, t1, t2 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmacSum(&prk, key, input)
	hmacSum(t0, prk[:], []byte{1})
	hmacSum(t1, prk[:], t0[:], []byte{2})
	hmacSum(t2, prk[:], t1[:], []byte{3})
	clear(prk[:])
}

// mac16 sets dst = MAC(key, in...): keyed BLAKE2s with a 16-byte output.
func mac16(dst *[16]byte, key []byte, in ...[]byte) {
	m, err := blake2s.New128(key)
	if err != nil {
		panic("wireguard: bad mac key length") // keys are 16 or 32 bytes by construction
	}
	for _, b := range in {
		m.Write(b)
	}
	m.Sum(dst[:0])
}

// dh computes X25519(priv, pub) and rejects low order points.
func dh(priv *PrivateKey, pub *[32]byte) ([32]byte, error) {
	var out [32]byte
	r, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, errLowOrderPoint
	}
	copy(out[:], r)
	return out, nil
}

// dhKey is dh with a key whose public half is already computed: one scalar
// multiplication, where dh (through x/crypto's X25519, which builds a
// crypto/ecdh key and so derives its public key first) costs two.
func dhKey(k *ecdh.PrivateKey, pub *[32]byte) ([32]byte, error) {
	var out [32]byte
	p, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return out, errLowOrderPoint
	}
	r, err := k.ECDH(p) // refuses an all-zero result (a low order point)
	if err != nil {
		return out, errLowOrderPoint
	}
	copy(out[:], r)
	return out, nil
}

// ecdhKey is k as a crypto/ecdh key (which derives its public key).
func ecdhKey(k *PrivateKey) *ecdh.PrivateKey {
	e, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		panic("wireguard: a private key is not 32 bytes") // an array: cannot happen
	}
	return e
}

func isZero32(b *[32]byte) bool {
	var z [32]byte
	return subtle.ConstantTimeCompare(b[:], z[:]) == 1
}
