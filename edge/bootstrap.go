package edge

import (
	"cmp"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/internal/atomicfile"
)

// Files in the data directory besides the store and the CA.
const (
	storeFile      = "switchyard.db"
	masterKeyFile  = "master.key"
	wgKeyFile      = "wg.key"
	adminHashFile  = "admin-token.sha256"
	adminTokenBits = 256
)

// identity is what an edge keeps in its data directory.
type identity struct {
	ca        *pki.CA
	master    masterKey
	wgPrivate [32]byte
	wgPublic  string   // base64
	adminHash [32]byte // SHA-256 of the admin token
	newToken  string   // the admin token, only on the start that created it
	// adminToken is the admin token where the edge knows it (a cluster keeps
	// it sealed in etcd, so every edge's admin.json holds it); else empty.
	adminToken string
	// heartbeat4 and heartbeat6 are this edge's own addresses in its cluster
	// (model.EdgeOwnAddress of its index), where it answers heartbeats as
	// well as at the address every edge shares; invalid for a single edge.
	heartbeat4, heartbeat6 netip.Addr
}

// masterKey derives tunnel secrets: HMAC-SHA256(master, label || tunnel id).
type masterKey []byte

// TunnelSecret implements registry.SecretSource.
func (k masterKey) TunnelSecret(id uuid.UUID) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("switchyard tunnel secret v1"))
	m.Write(id[:])
	return m.Sum(nil)
}

// Fixed-length keys in the data directory, and what a new one would break
// (why the edge refuses a damaged file rather than replacing it).
var (
	masterKeySecret = secretFile{masterKeyFile, 32,
		"every tunnel secret derives from it, so a new key would invalidate every tunnel token"}
	wgKeySecret = secretFile{wgKeyFile, 32,
		"tokens and agents carry its public key, so a new key would cut every agent off"}
)

// loadIdentity reads the edge's identity from dir, creating what is missing.
func loadIdentity(dir string) (*identity, error) {
	// It holds the CA key, the master key and the store.
	if err := atomicfile.PrivateDir(dir); err != nil {
		return nil, err
	}
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	id := &identity{ca: ca}
	master, err := masterKeySecret.loadOrCreate(dir, func() ([]byte, error) {
		return randomBytes(32), nil
	})
	if err != nil {
		return nil, err
	}
	id.master = master
	wg, err := wgKeySecret.loadOrCreate(dir, newWGKey)
	if err != nil {
		return nil, err
	}
	if err := id.setWGKey(wg); err != nil {
		return nil, fmt.Errorf("load %s: %w", wgKeyFile, err)
	}

	hashPath := filepath.Join(dir, adminHashFile)
	buf, err := os.ReadFile(hashPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		id.newToken = newAdminToken()
		id.adminHash = sha256.Sum256([]byte(id.newToken))
		if err := atomicfile.WriteFile(hashPath, []byte(hex.EncodeToString(id.adminHash[:])+"\n"), 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read admin token hash: %w", err)
	default:
		h, err := hex.DecodeString(strings.TrimSpace(string(buf)))
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("read admin token hash %s: not 64 hex digits", hashPath)
		}
		copy(id.adminHash[:], h)
	}
	return id, nil
}

// secretFile is a fixed-length key kept in base64 (one line, mode 0600).
type secretFile struct {
	name string
	size int    // bytes, decoded
	lost string // what replacing the key would break
}

// loadOrCreate reads the key from dir, creating it on first use. A file that
// exists but does not hold exactly one key of the right size (empty,
// truncated, not base64, all zero) is refused, never replaced.
func (f secretFile) loadOrCreate(dir string, create func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(dir, f.name)
	buf, err := os.ReadFile(path)
	if err == nil {
		b, err := f.decode(buf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w; restore it from a backup: the edge will not replace it, as %s", path, err, f.lost)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	b, err := create()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if len(b) != f.size {
		return nil, fmt.Errorf("create %s: %d bytes, want %d", path, len(b), f.size)
	}
	return b, atomicfile.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
}

// decode checks and decodes the content of a key file.
func (f secretFile) decode(buf []byte) ([]byte, error) {
	text := strings.TrimSpace(string(buf))
	if text == "" {
		return nil, errors.New("the file is empty")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("not one base64 %d-byte key (damaged or truncated)", f.size)
	}
	if len(b) != f.size {
		return nil, fmt.Errorf("a %d-byte key, want %d (damaged or truncated)", len(b), f.size)
	}
	if subtle.ConstantTimeCompare(b, make([]byte, f.size)) == 1 {
		return nil, errors.New("the key is all zero")
	}
	return b, nil
}

// writeAdminConfig writes the admin config on the start that created the token,
// and on later starts keeps its API address current.
func writeAdminConfig(dir, apiURL string, id *identity) error {
	path := filepath.Join(dir, client.ConfigFile)
	cfg := client.Config{API: apiURL, Token: cmp.Or(id.adminToken, id.newToken), CA: string(id.ca.CertPEM)}
	if cfg.Token == "" {
		old, err := client.LoadConfig(path)
		if err != nil {
			return nil // the operator removed it; the token was printed once
		}
		if old.API == apiURL {
			return nil
		}
		cfg.Token = old.Token
	}
	buf, _ := json.MarshalIndent(cfg, "", "  ")
	return atomicfile.WriteFile(path, append(buf, '\n'), 0o600)
}

// newWGKey makes a WireGuard private key.
func newWGKey() ([]byte, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return k.Bytes(), nil
}

// setWGKey makes b, 32 bytes, the edge's WireGuard key.
func (id *identity) setWGKey(b []byte) error {
	priv, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return err
	}
	copy(id.wgPrivate[:], b)
	id.wgPublic = base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())
	return nil
}

// newAdminToken makes an admin token.
func newAdminToken() string {
	return "syadm_" + base64.RawURLEncoding.EncodeToString(randomBytes(adminTokenBits/8))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
