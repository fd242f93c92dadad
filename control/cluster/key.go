package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the length of a cluster key.
const KeySize = chacha20poly1305.KeySize

// Key seals the cluster's secrets at rest in etcd: a dump of etcd alone
// reveals no private key or secret. Every edge of a cluster is given the same key.
type Key [KeySize]byte

// ErrWrongKey is returned when the cluster key does not open a secret that
// another edge sealed: the edge was given another cluster's key.
var ErrWrongKey = errors.New("cluster: the cluster key does not open the cluster's secrets (wrong --cluster-key?)")

// NewKey returns a random cluster key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("cluster key: %w", err)
	}
	return k, nil
}

// Encode returns the key as a line of base64, the format of a key file.
func (k Key) Encode() string { return base64.StdEncoding.EncodeToString(k[:]) + "\n" }

// ParseKey reads a key file's content: base64 of exactly KeySize bytes.
func ParseKey(b []byte) (Key, error) {
	var k Key
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return k, errors.New("not base64")
	}
	if len(raw) != KeySize {
		return k, fmt.Errorf("%d bytes, want %d", len(raw), KeySize)
	}
	copy(k[:], raw)
	return k, nil
}

// LoadKey reads a cluster key file.
func LoadKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read cluster key: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return Key{}, fmt.Errorf("read cluster key %s: %w", path, err)
	}
	return k, nil
}

// seal encrypts a secret named name.
func (k Key) seal(name string, plain []byte) []byte {
	aead, _ := chacha20poly1305.NewX(k[:]) // cannot fail: the key has the right size
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, aad(name))
}

// open decrypts a secret named name, or returns ErrWrongKey.
func (k Key) open(name string, sealed []byte) ([]byte, error) {
	aead, _ := chacha20poly1305.NewX(k[:])
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("cluster secret %s: %d bytes is too short", name, len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad(name))
	if err != nil {
		return nil, fmt.Errorf("cluster secret %s: %w", name, ErrWrongKey)
	}
	return plain, nil
}

func aad(name string) []byte { return []byte("switchyard cluster secret v1 " + name) }
