package wireguard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the size in bytes of every WireGuard key.
const KeySize = 32

// PrivateKey is a Curve25519 private key.
type PrivateKey [KeySize]byte

// PublicKey is a Curve25519 public key; it identifies a peer.
type PublicKey [KeySize]byte

// PresharedKey is the optional symmetric key mixed into a handshake.
type PresharedKey [KeySize]byte

// GeneratePrivateKey returns a new random, clamped private key.
func GeneratePrivateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate private key: %w", err)
	}
	k.clamp()
	return k, nil
}

func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// PublicKey returns the public key that belongs to k.
func (k PrivateKey) PublicKey() PublicKey {
	var pub PublicKey
	curve25519.ScalarBaseMult((*[32]byte)(&pub), (*[32]byte)(&k))
	return pub
}

// IsZero reports whether k is all zeros.
func (k PrivateKey) IsZero() bool {
	var z PrivateKey
	return subtle.ConstantTimeCompare(k[:], z[:]) == 1
}

// String returns the base64 encoding of k, as wg(8) prints it.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ParsePublicKey decodes a base64 public key as printed by wg(8).
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	err := parseKey(s, k[:])
	return k, err
}

// ParsePrivateKey decodes a base64 private key as printed by wg(8).
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	err := parseKey(s, k[:])
	return k, err
}

func parseKey(s string, dst []byte) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("parse key: %w", err)
	}
	if len(b) != KeySize {
		return fmt.Errorf("parse key: got %d bytes, want %d", len(b), KeySize)
	}
	copy(dst, b)
	return nil
}
