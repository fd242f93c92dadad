package registry

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

const (
	collEnrollTokens = "enroll_tokens"
	collDevices      = "devices"
	collSettings     = "settings"
	keySplitTunnel   = "split_tunnel"
)

// enrollRecord is an enrollment token as stored: its secret only hashed.
type enrollRecord struct {
	model.EnrollToken
	SecretHash []byte `json:"secret_hash"`
}

// deviceRecord is a device as stored: its credential secret only hashed.
type deviceRecord struct {
	model.Device
	SecretHash []byte `json:"secret_hash"`
}

// CreateEnrollToken creates a device enrollment token and returns it with its secret.
func (r *Registry) CreateEnrollToken(ctx context.Context, req model.NewEnrollToken) (model.EnrollToken, []byte, error) {
	if err := model.ValidateComment(req.Comment); err != nil {
		return model.EnrollToken{}, nil, err
	}
	if req.TTL < 0 {
		return model.EnrollToken{}, nil, model.Errorf(model.KindInvalid, "token lifetime %v is negative", req.TTL)
	}
	secret := newSecret()
	rec := enrollRecord{EnrollToken: model.EnrollToken{ID: uuid.New(), Comment: req.Comment, CreatedAt: r.stamp()}, SecretHash: hashSecret(secret)}
	if req.TTL > 0 {
		exp := rec.CreatedAt.Add(req.TTL)
		rec.ExpiresAt = &exp
	}
	_, err := r.st.Update(ctx, func(tx store.Tx) error { return putJSON(tx, collEnrollTokens, rec.ID, rec) })
	return rec.EnrollToken, secret, err
}

// ListEnrollTokens lists the enrollment tokens (without their secrets).
func (r *Registry) ListEnrollTokens(ctx context.Context) ([]model.EnrollToken, error) {
	var out []model.EnrollToken
	err := r.st.View(ctx, func(tx store.Tx) error {
		all, err := loadAll[enrollRecord](tx, collEnrollTokens)
		for _, t := range all {
			out = append(out, t.EnrollToken)
		}
		return err
	})
	sortByCreation(out, func(t model.EnrollToken) (time.Time, string) { return t.CreatedAt, t.ID.String() })
	return out, err
}

// DeleteEnrollToken deletes an enrollment token; devices it enrolled stay.
func (r *Registry) DeleteEnrollToken(ctx context.Context, id uuid.UUID) error {
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		if _, err := getJSON[enrollRecord](tx, collEnrollTokens, id); err != nil {
			return model.Errorf(model.KindNotFound, "enrollment token %s not found", id)
		}
		return tx.Delete(collEnrollTokens, id.String())
	})
	return err
}

// EnrollDevice registers a device with an enrollment token and gives it an
// overlay address. Enrolling the same key again (a reinstall) returns the same
// device with the same address and a new credential secret, which it returns.
func (r *Registry) EnrollDevice(ctx context.Context, tokenID uuid.UUID, tokenSecret []byte, req model.DeviceEnrollment) (model.Device, []byte, error) {
	if err := model.ValidateKey(req.PublicKey); err != nil {
		return model.Device{}, nil, err
	}
	if err := model.ValidateName("device", req.Name); err != nil {
		return model.Device{}, nil, err
	}
	for _, s := range []string{req.DeviceType, req.OSVersion, req.Version, req.User} {
		if err := model.ValidateText("device field", s, maxTextLen); err != nil {
			return model.Device{}, nil, err
		}
	}
	secret := newSecret()
	var d deviceRecord
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		tok, err := getJSON[enrollRecord](tx, collEnrollTokens, tokenID)
		if err != nil || subtle.ConstantTimeCompare(hashSecret(tokenSecret), tok.SecretHash) != 1 {
			return model.Errorf(model.KindUnauthorized, "invalid enrollment token")
		}
		if tok.ExpiresAt != nil && r.now().After(*tok.ExpiresAt) {
			return model.Errorf(model.KindUnauthorized, "enrollment token expired at %s", tok.ExpiresAt.Format(time.RFC3339))
		}
		all, err := loadAll[deviceRecord](tx, collDevices)
		if err != nil {
			return err
		}
		now := r.stamp()
		i := slices.IndexFunc(all, func(o deviceRecord) bool { return o.Key == req.PublicKey && !o.Revoked() })
		if i >= 0 {
			d = all[i]
		} else {
			if err := checkKeyUnused(tx, req.PublicKey, uuid.Nil); err != nil {
				return err
			}
			ip, err := r.allocate(all)
			if err != nil {
				return err
			}
			d = deviceRecord{Device: model.Device{ID: uuid.New(), IP: ip, Key: req.PublicKey, Created: now}}
		}
		d.Name, d.DeviceType, d.OSVersion, d.Version, d.User = req.Name, req.DeviceType, req.OSVersion, req.Version, req.User
		d.Updated, d.SecretHash = now, hashSecret(secret)
		return putJSON(tx, collDevices, d.ID, d)
	})
	if err != nil {
		return model.Device{}, nil, err
	}
	return d.Device, secret, nil
}

// allocate returns the lowest free overlay address, skipping the range's
// first address (the edge's) and, for IPv4, its last.
func (r *Registry) allocate(devices []deviceRecord) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, d := range devices {
		if !d.Revoked() {
			used[d.IP] = true
		}
	}
	for a := r.overlay.Addr().Next().Next(); r.overlay.Contains(a); a = a.Next() {
		if a.Is4() && !r.overlay.Contains(a.Next()) {
			break // the broadcast address
		}
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, model.Errorf(model.KindConflict, "the overlay range %s has no free address", r.overlay)
}

// AuthenticateDevice returns the live device with that id if secret is its credential.
func (r *Registry) AuthenticateDevice(ctx context.Context, id uuid.UUID, secret []byte) (model.Device, error) {
	var d deviceRecord
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		d, err = getJSON[deviceRecord](tx, collDevices, id)
		return err
	})
	if err != nil || d.Revoked() || subtle.ConstantTimeCompare(hashSecret(secret), d.SecretHash) != 1 {
		return model.Device{}, model.Errorf(model.KindUnauthorized, "invalid device credential (revoked or unknown device)")
	}
	return d.Device, nil
}

// ListDevices lists the devices; revoked ones only with showRevoked.
func (r *Registry) ListDevices(ctx context.Context, showRevoked bool) ([]model.Device, error) {
	var out []model.Device
	err := r.st.View(ctx, func(tx store.Tx) error {
		all, err := loadAll[deviceRecord](tx, collDevices)
		for _, d := range all {
			if showRevoked || !d.Revoked() {
				out = append(out, d.Device)
			}
		}
		return err
	})
	sortByCreation(out, func(d model.Device) (time.Time, string) { return d.Created, d.Name })
	return out, err
}

// RevokeDevice revokes the live device named by ref (id or name): the edge
// drops its session at once and its credential stops working.
func (r *Registry) RevokeDevice(ctx context.Context, ref string) (model.Device, error) {
	var d deviceRecord
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		d, err = resolve[deviceRecord](tx, collDevices, "device", ref,
			func(d deviceRecord) (uuid.UUID, string, bool) { return d.ID, d.Name, d.Revoked() })
		if err != nil {
			return err
		}
		now := r.stamp()
		d.RevokedAt, d.Updated = &now, now
		return putJSON(tx, collDevices, d.ID, d)
	})
	return d.Device, err
}

// SelectVNet switches the virtual network a device's traffic goes into.
func (r *Registry) SelectVNet(ctx context.Context, deviceID uuid.UUID, vnet string) (model.VNet, error) {
	var v model.VNet
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		d, err := getJSON[deviceRecord](tx, collDevices, deviceID)
		if err != nil || d.Revoked() {
			return model.Errorf(model.KindUnauthorized, "device %s is revoked or unknown", deviceID)
		}
		if v, err = resolveVNet(tx, vnet); err != nil {
			return err
		}
		d.VNetID, d.Updated = v.ID, r.stamp()
		if v.IsDefault && vnet == "" {
			d.VNetID = uuid.Nil // follow the default
		}
		return putJSON(tx, collDevices, d.ID, d)
	})
	return v, err
}

// DeviceConfig computes a device's configuration; the API adds the edge's
// address, key and MTU.
func (r *Registry) DeviceConfig(ctx context.Context, deviceID uuid.UUID) (model.DeviceConfig, error) {
	var cfg model.DeviceConfig
	err := r.st.View(ctx, func(tx store.Tx) error {
		d, err := getJSON[deviceRecord](tx, collDevices, deviceID)
		if err != nil || d.Revoked() {
			return model.Errorf(model.KindUnauthorized, "device %s is revoked or unknown", deviceID)
		}
		v, err := deviceVNet(tx, d.Device)
		if err != nil {
			return err
		}
		st, err := splitTunnel(tx)
		if err != nil {
			return err
		}
		cfg = model.DeviceConfig{DeviceID: d.ID, IP: d.IP, OverlayRange: r.overlay, VNetID: v.ID, VNetName: v.Name, SplitTunnel: st}
		return nil
	})
	return cfg, err
}

// deviceVNet is the virtual network a device sends into: the one it selected
// while that exists, else the default.
func deviceVNet(tx store.Tx, d model.Device) (model.VNet, error) {
	if d.VNetID != uuid.Nil {
		if v, err := getJSON[model.VNet](tx, collVNets, d.VNetID); err == nil && !v.Deleted() {
			return v, nil
		}
	}
	return resolveVNet(tx, "")
}

func newSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}
