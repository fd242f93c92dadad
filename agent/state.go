package agent

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/crypto/curve25519"

	"github.com/switchyard/switchyard/internal/atomicfile"
)

// Files in the state directory.
const (
	keyFile      = "wg.key" // the WireGuard private key, base64, mode 0600
	identityFile = "identity.json"
)

// identity is what the agent remembers across restarts.
type identity struct {
	ConnectorID uuid.UUID `json:"connector_id"`
	TunnelID    uuid.UUID `json:"tunnel_id"`
}

// key is a WireGuard key pair.
type key struct {
	private, public [32]byte
}

func (k key) publicBase64() string { return base64.StdEncoding.EncodeToString(k.public[:]) }

// keyProof is the secret a device enrolls with (model.DeviceEnrollment.KeyProof):
// an HMAC of a fixed label under the private key, so that only the key's
// holder computes it and the edge learns nothing of the key. The same key
// always gives the same proof, so a device that lost its credential (or
// whose enrollment answer was lost) re-enrolls as itself.
func (k key) keyProof() []byte {
	m := hmac.New(sha256.New, k.private[:])
	m.Write([]byte("switchyard device key proof v1"))
	return m.Sum(nil)
}

// prepare creates the state directory (0700; an existing one is tightened to
// 0700, as it holds the key and credential) and loads the agent's key; it
// returns log, or a logger that discards when log is nil.
func prepare(stateDir string, log *slog.Logger) (*slog.Logger, key, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if stateDir == "" {
		return log, key{}, errors.New("--state-dir is required")
	}
	if err := atomicfile.PrivateDir(stateDir); err != nil {
		return log, key{}, fmt.Errorf("state dir: %w", err)
	}
	for _, f := range oldFiles {
		if err := os.Remove(filepath.Join(stateDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("removing a file of an older version", "err", err)
		}
	}
	k, err := loadOrCreateKey(stateDir)
	return log, k, err
}

// loadOrCreateKey reads the agent's private key, generating it on first start.
// The private key never leaves the host.
func loadOrCreateKey(dir string) (key, error) {
	var k key
	path := filepath.Join(dir, keyFile)
	buf, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, err := rand.Read(k.private[:]); err != nil {
			return k, fmt.Errorf("generate WireGuard key: %w", err)
		}
		k.private[0] &= 248
		k.private[31] = (k.private[31] & 127) | 64
		if err := atomicfile.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k.private[:])+"\n"), 0o600); err != nil {
			return k, err
		}
	case err != nil:
		return k, fmt.Errorf("read WireGuard key: %w", err)
	default:
		if k.private, err = parseKey(path, buf); err != nil {
			return k, err
		}
	}
	return k.withPublic()
}

// parseKey reads the private key file path holds.
func parseKey(path string, buf []byte) ([32]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(buf)))
	if err != nil || len(b) != 32 {
		// Never replaced: the edge knows this agent by its public key.
		return [32]byte{}, fmt.Errorf("read WireGuard key %s: not one base64 32-byte key (empty, truncated or damaged); restore it, or remove it and %s to enroll as a new agent", path, identityFile)
	}
	return [32]byte(b), nil
}

// withPublic derives k's public key from its private key.
func (k key) withPublic() (key, error) {
	pub, err := curve25519.X25519(k.private[:], curve25519.Basepoint)
	if err != nil {
		return k, fmt.Errorf("derive WireGuard public key: %w", err)
	}
	copy(k.public[:], pub)
	return k, nil
}

// ReadKey returns the WireGuard private key of the agent whose state
// directory is dir, without creating one: an error matching os.ErrNotExist
// means no agent has started there yet.
func ReadKey(dir string) ([32]byte, error) {
	path := filepath.Join(dir, keyFile)
	buf, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}, fmt.Errorf("read WireGuard key: %w", err)
	}
	return parseKey(path, buf)
}

func loadIdentity(dir string) (identity, bool) {
	var id identity
	buf, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil || json.Unmarshal(buf, &id) != nil {
		return id, false
	}
	return id, true
}

func saveIdentity(dir string, id identity) error {
	buf, _ := json.MarshalIndent(id, "", "  ")
	return atomicfile.WriteFile(filepath.Join(dir, identityFile), append(buf, '\n'), 0o600)
}

func hexKey(k []byte) string { return hex.EncodeToString(k) }
