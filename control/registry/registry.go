// Package registry is the control plane's domain logic: virtual networks,
// tunnels and routes with the semantics cloudflared users know, written once
// over any store.Store. It imports model, store and routing, never the API
// server or the CLI.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// Collections in the store.
const (
	collVNets   = "vnets"
	collTunnels = "tunnels"
	collRoutes  = "routes"
)

// SecretSource derives the secret of a tunnel from its id, so that the store
// keeps only a hash and `tunnel token` can still print the token again.
type SecretSource interface {
	TunnelSecret(id uuid.UUID) []byte
}

// Options configure a Registry.
type Options struct {
	// Secrets derives tunnel secrets; required.
	Secrets SecretSource
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OverlayRange is where devices get overlay addresses; zero means
	// model.DefaultOverlayRange.
	OverlayRange netip.Prefix
}

// Registry implements the control plane's operations over a store.
type Registry struct {
	st      store.Store
	secrets SecretSource
	now     func() time.Time
	overlay netip.Prefix
}

// New returns a Registry over st, creating the default virtual network if the
// store has none.
func New(ctx context.Context, st store.Store, opts Options) (*Registry, error) {
	if opts.Secrets == nil {
		return nil, errors.New("registry.New: a SecretSource is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if !opts.OverlayRange.IsValid() {
		opts.OverlayRange = model.DefaultOverlayRange
	}
	if err := model.ValidatePrefix(opts.OverlayRange); err != nil {
		return nil, fmt.Errorf("registry.New: overlay range: %w", err)
	}
	r := &Registry{st: st, secrets: opts.Secrets, now: opts.Now, overlay: opts.OverlayRange}
	_, err := st.Update(ctx, func(tx store.Tx) error {
		vnets, err := loadAll[model.VNet](tx, collVNets)
		if err != nil || len(vnets) > 0 {
			return err
		}
		v := model.VNet{ID: uuid.New(), Name: model.DefaultVNetName, IsDefault: true, CreatedAt: r.stamp()}
		return putJSON(tx, collVNets, v.ID, v)
	})
	if err != nil {
		return nil, fmt.Errorf("registry.New: create default virtual network: %w", err)
	}
	return r, nil
}

// Store returns the underlying store, for watchers.
func (r *Registry) Store() store.Store { return r.st }

func (r *Registry) stamp() time.Time { return r.now().UTC().Truncate(time.Microsecond) }

// tunnelRecord is a tunnel as stored: the API never sees the secret's hash.
type tunnelRecord struct {
	model.Tunnel
	SecretHash []byte `json:"secret_hash"`
}

func hashSecret(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return h[:]
}

// CreateTunnel creates a tunnel and returns it with its secret.
func (r *Registry) CreateTunnel(ctx context.Context, req model.NewTunnel) (model.Tunnel, []byte, error) {
	if err := model.ValidateName("tunnel", req.Name); err != nil {
		return model.Tunnel{}, nil, err
	}
	t := tunnelRecord{Tunnel: model.Tunnel{ID: uuid.New(), Name: req.Name, Connections: []model.Connection{}}}
	secret := r.secrets.TunnelSecret(t.ID)
	t.SecretHash = hashSecret(secret)
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		all, err := loadAll[tunnelRecord](tx, collTunnels)
		if err != nil {
			return err
		}
		for _, o := range all {
			if !o.Deleted() && o.Name == req.Name {
				return model.Errorf(model.KindConflict, "a tunnel named %q already exists (id %s)", req.Name, o.ID)
			}
		}
		t.CreatedAt = r.stamp()
		return putJSON(tx, collTunnels, t.ID, t)
	})
	if err != nil {
		return model.Tunnel{}, nil, err
	}
	return t.Tunnel, secret, nil
}

// ListTunnels returns the tunnels that match f, oldest first.
func (r *Registry) ListTunnels(ctx context.Context, f model.TunnelFilter) ([]model.Tunnel, error) {
	var out []model.Tunnel
	err := r.st.View(ctx, func(tx store.Tx) error {
		all, err := loadAll[tunnelRecord](tx, collTunnels)
		for _, t := range all {
			if (t.Deleted() && !f.ShowDeleted) || (f.ID != nil && t.ID != *f.ID) || (f.Name != "" && t.Name != f.Name) {
				continue
			}
			out = append(out, t.Tunnel)
		}
		return err
	})
	sortByCreation(out, func(t model.Tunnel) (time.Time, string) { return t.CreatedAt, t.Name })
	return out, err
}

// GetTunnel returns the live tunnel named by ref (name or id).
func (r *Registry) GetTunnel(ctx context.Context, ref string) (model.Tunnel, error) {
	var t tunnelRecord
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = resolveTunnel(tx, ref)
		return err
	})
	return t.Tunnel, err
}

// TunnelSecret returns the live tunnel named by ref with its secret, derived again.
func (r *Registry) TunnelSecret(ctx context.Context, ref string) (model.Tunnel, []byte, error) {
	var t tunnelRecord
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = resolveTunnel(tx, ref)
		return err
	})
	if err != nil {
		return model.Tunnel{}, nil, err
	}
	secret := r.secrets.TunnelSecret(t.ID)
	if subtle.ConstantTimeCompare(hashSecret(secret), t.SecretHash) != 1 {
		return model.Tunnel{}, nil, model.Errorf(model.KindConflict, "the secret of tunnel %s cannot be derived: the edge's master key changed since it was created", t.Name)
	}
	return t.Tunnel, secret, nil
}

// AuthenticateTunnel returns the live tunnel with that id if secret is its secret.
func (r *Registry) AuthenticateTunnel(ctx context.Context, id uuid.UUID, secret []byte) (model.Tunnel, error) {
	var t tunnelRecord
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		t, err = getJSON[tunnelRecord](tx, collTunnels, id)
		return err
	})
	if err := storeErr(err); err != nil {
		return model.Tunnel{}, err
	}
	if err != nil || t.Deleted() || subtle.ConstantTimeCompare(hashSecret(secret), t.SecretHash) != 1 {
		return model.Tunnel{}, model.Errorf(model.KindUnauthorized, "invalid tunnel token")
	}
	return t.Tunnel, nil
}

// DeleteTunnel deletes the tunnel named by ref, and its connectors. It is
// refused while routes point at it, unless force, which deletes those routes
// too. It returns the number of routes deleted.
func (r *Registry) DeleteTunnel(ctx context.Context, ref string, force bool) (int, error) {
	deleted := 0
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		deleted = 0
		t, err := resolveTunnel(tx, ref)
		if err != nil {
			return err
		}
		routes, err := liveRoutes(tx, func(rt model.Route) bool { return rt.TunnelID == t.ID })
		if err != nil {
			return err
		}
		if !force && len(routes) > 0 {
			return model.Errorf(model.KindConflict, "tunnel %s still has %d route(s); delete them first or use --force", t.Name, len(routes))
		}
		if err := refusePolicyUse(tx, "tunnel", model.SelTunnel, t.Name, t.ID, force); err != nil {
			return err
		}
		now := r.stamp()
		if deleted, err = r.deleteRoutes(tx, routes, now); err != nil {
			return err
		}
		if err := deleteConnectors(tx, t.ID); err != nil {
			return err
		}
		t.DeletedAt = &now
		return putJSON(tx, collTunnels, t.ID, t)
	})
	return deleted, err
}

func (r *Registry) deleteRoutes(tx store.Tx, routes []model.Route, now time.Time) (int, error) {
	for _, rt := range routes {
		rt.DeletedAt = &now
		if err := putJSON(tx, collRoutes, rt.ID, rt); err != nil {
			return 0, err
		}
	}
	return len(routes), nil
}

// resolveTunnel finds a live tunnel by id or name.
func resolveTunnel(tx store.Tx, ref string) (tunnelRecord, error) {
	return resolve[tunnelRecord](tx, collTunnels, "tunnel", ref,
		func(t tunnelRecord) (uuid.UUID, string, bool) { return t.ID, t.Name, t.Deleted() })
}

// resolve finds a live object of coll by id or by name.
func resolve[T any](tx store.Tx, coll, what, ref string, key func(T) (uuid.UUID, string, bool)) (T, error) {
	var zero T
	if ref == "" {
		return zero, model.Errorf(model.KindInvalid, "%s name or id is missing", what)
	}
	if len(ref) > 256 {
		return zero, model.Errorf(model.KindInvalid, "%s name or id is too long", what)
	}
	if id, err := uuid.Parse(ref); err == nil {
		v, err := getJSON[T](tx, coll, id)
		if err == nil {
			if _, _, deleted := key(v); !deleted {
				return v, nil
			}
		} else if !errors.Is(err, model.ErrNotFound) {
			return zero, err
		}
		return zero, model.Errorf(model.KindNotFound, "%s %s not found", what, ref)
	}
	all, err := loadAll[T](tx, coll)
	if err != nil {
		return zero, err
	}
	var found []T
	var ids []string
	for _, v := range all {
		if id, name, deleted := key(v); !deleted && name == ref {
			found = append(found, v)
			ids = append(ids, id.String())
		}
	}
	switch len(found) {
	case 0:
		return zero, model.Errorf(model.KindNotFound, "%s %q not found", what, ref)
	case 1:
		return found[0], nil
	}
	// Names of devices need not be unique: never pick one of several.
	return zero, model.Errorf(model.KindConflict, "%d %ss are named %q: give the id (%s)", len(found), what, ref, strings.Join(ids, ", "))
}

func putJSON(tx store.Tx, coll string, id uuid.UUID, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", coll, id, err)
	}
	return tx.Put(coll, id.String(), buf)
}

// storeErr returns err unless it is nil or says that a record is missing:
// where a missing record is answered as "not found" or "invalid
// credential", a store that cannot answer (store.ErrUnavailable: HTTP 503,
// retry) or a damaged record must not be, or an agent would take it for a
// revocation and give up.
func storeErr(err error) error {
	if err == nil || errors.Is(err, model.ErrNotFound) {
		return nil
	}
	return err
}

func getJSON[T any](tx store.Tx, coll string, id uuid.UUID) (T, error) {
	var v T
	buf, err := tx.Get(coll, id.String())
	if errors.Is(err, store.ErrNotFound) {
		return v, model.ErrNotFound
	}
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(buf, &v); err != nil {
		return v, fmt.Errorf("decode %s/%s: %w", coll, id, err)
	}
	return v, nil
}

func loadAll[T any](tx store.Tx, coll string) ([]T, error) {
	var out []T
	err := tx.List(coll, func(key string, buf []byte) error {
		var v T
		if err := json.Unmarshal(buf, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", coll, key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// Rev returns the store's current revision.
func (r *Registry) Rev(ctx context.Context) (int64, error) {
	var rev int64
	err := r.st.View(ctx, func(tx store.Tx) error { rev = tx.Rev(); return nil })
	return rev, err
}
