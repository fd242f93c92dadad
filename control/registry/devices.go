package registry

import (
	"cmp"
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

// deviceRecord is a device as stored: its credential secret and key proof
// only hashed. Records stored before ProofHash existed have none: their key
// re-enrolls only with the device's credential.
type deviceRecord struct {
	model.Device
	SecretHash []byte `json:"secret_hash"`
	ProofHash  []byte `json:"proof_hash,omitempty"`
}

// Credential is an agent credential as the API decodes it: an id and a secret.
type Credential struct {
	ID     uuid.UUID
	Secret []byte
}

// CreateEnrollToken creates a device enrollment token and returns it with its
// secret. It expires after model.DefaultEnrollTTL unless the request says otherwise.
func (r *Registry) CreateEnrollToken(ctx context.Context, req model.NewEnrollToken) (model.EnrollToken, []byte, error) {
	if err := model.ValidateComment(req.Comment); err != nil {
		return model.EnrollToken{}, nil, err
	}
	switch {
	case req.TTL < 0:
		return model.EnrollToken{}, nil, model.Errorf(model.KindInvalid, "token lifetime %v is negative", req.TTL)
	case req.TTL > 0 && req.NoExpiry:
		return model.EnrollToken{}, nil, model.Errorf(model.KindInvalid, "a token lifetime (%v) and no expiry are exclusive", req.TTL)
	case req.MaxUses < 0:
		return model.EnrollToken{}, nil, model.Errorf(model.KindInvalid, "token use count %d is negative", req.MaxUses)
	}
	if req.User != "" {
		if err := model.ValidateUser(req.User); err != nil {
			return model.EnrollToken{}, nil, err
		}
	}
	secret := newSecret()
	rec := enrollRecord{EnrollToken: model.EnrollToken{ID: uuid.New(), Comment: req.Comment, CreatedAt: r.stamp(), User: req.User, MaxUses: req.MaxUses}, SecretHash: hashSecret(secret)}
	if !req.NoExpiry {
		exp := rec.CreatedAt.Add(cmp.Or(req.TTL, model.DefaultEnrollTTL))
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
			if err := storeErr(err); err != nil {
				return err
			}
			return model.Errorf(model.KindNotFound, "enrollment token %s not found", id)
		}
		return tx.Delete(collEnrollTokens, id.String())
	})
	return err
}

// EnrollDevice registers a device with an enrollment token and gives it an
// overlay address; the device's user is the token's. Enrolling a key that a
// live device holds (a reinstall, or a retry) returns that device with the
// same address and a new credential secret, but only when the request
// proves it is that device: its key proof or its current credential (own);
// anything else is refused and leaves the device untouched. A revoked key
// is refused until an admin lifts the revocation (UnrevokeDevice).
func (r *Registry) EnrollDevice(ctx context.Context, tok Credential, req model.DeviceEnrollment, own Credential) (model.Device, []byte, error) {
	if err := r.validateEnrollment(req); err != nil {
		return model.Device{}, nil, err
	}
	secret := newSecret()
	var d deviceRecord
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		t, err := getJSON[enrollRecord](tx, collEnrollTokens, tok.ID)
		if err := storeErr(err); err != nil {
			return err
		}
		if err != nil || subtle.ConstantTimeCompare(hashSecret(tok.Secret), t.SecretHash) != 1 {
			return model.Errorf(model.KindUnauthorized, "invalid enrollment token")
		}
		if t.ExpiresAt != nil && r.now().After(*t.ExpiresAt) {
			return model.Errorf(model.KindUnauthorized, "enrollment token %s expired at %s", t.ID, t.ExpiresAt.Format(time.RFC3339))
		}
		if req.User != "" && req.User != t.User {
			return model.Errorf(model.KindForbidden, "enroll device: a device's user comes from its enrollment token, whose user is %q, not %q (device enroll-token create --user)", t.User, req.User)
		}
		if d, err = r.claimKey(tx, req, own); err != nil {
			return err
		}
		if d.EnrollToken != t.ID { // a device counts once against a token, however often it re-enrolls with it
			if t.MaxUses > 0 && t.Uses >= t.MaxUses {
				return model.Errorf(model.KindUnauthorized, "enrollment token %s is used up (%d of %d uses)", t.ID, t.Uses, t.MaxUses)
			}
			t.Uses++
			if err := putJSON(tx, collEnrollTokens, t.ID, t); err != nil {
				return err
			}
		}
		d.User, d.EnrollToken = t.User, t.ID
		d.Subject, d.Groups, d.SessionExpiresAt = "", nil, nil // a token's device has no session
		return r.saveEnrolled(tx, &d, req, secret)
	})
	if err != nil {
		return model.Device{}, nil, err
	}
	return d.Device, secret, nil
}

// validateEnrollment checks the fields of an enrollment request.
func (r *Registry) validateEnrollment(req model.DeviceEnrollment) error {
	if err := model.ValidateKey(req.PublicKey); err != nil {
		return err
	}
	if err := model.ValidateName("device", req.Name); err != nil {
		return err
	}
	for _, s := range []string{req.DeviceType, req.OSVersion, req.Version, req.User} {
		if err := model.ValidateText("device field", s, maxTextLen); err != nil {
			return err
		}
	}
	if req.KeyProof != nil && len(req.KeyProof) != model.KeyProofLen {
		return model.Errorf(model.KindInvalid, "enroll device: key proof is %d bytes, want %d", len(req.KeyProof), model.KeyProofLen)
	}
	if req.Posture != nil {
		return r.validatePosture(req.Posture)
	}
	return nil
}

// claimKey returns the live device holding req's key when the request
// proves it is that device (key proof or credential own), or a new device
// record with a free overlay address when no live device holds it.
func (r *Registry) claimKey(tx store.Tx, req model.DeviceEnrollment, own Credential) (deviceRecord, error) {
	all, err := loadAll[deviceRecord](tx, collDevices)
	if err != nil {
		return deviceRecord{}, err
	}
	if i := slices.IndexFunc(all, func(o deviceRecord) bool { return o.Key == req.PublicKey && !o.Revoked() }); i >= 0 {
		d := all[i]
		if !d.ownedBy(req.KeyProof, own) {
			return deviceRecord{}, model.Errorf(model.KindConflict, "enroll device: public key %s is already enrolled as device %q (%s); re-enrolling it needs that device's credential or key proof", req.PublicKey, d.Name, d.ID)
		}
		return d, nil
	}
	if j := slices.IndexFunc(all, func(o deviceRecord) bool { return o.Key == req.PublicKey && o.KeyBanned() }); j >= 0 {
		return deviceRecord{}, model.Errorf(model.KindForbidden, "enroll device: public key %s was revoked with device %q (%s); it stays refused until an admin lifts that: switchyard device unrevoke %s", req.PublicKey, all[j].Name, all[j].ID, all[j].ID)
	}
	if err := checkKeyUnused(tx, req.PublicKey, uuid.Nil); err != nil {
		return deviceRecord{}, err
	}
	ip, err := r.allocate(all)
	if err != nil {
		return deviceRecord{}, err
	}
	return deviceRecord{Device: model.Device{ID: uuid.New(), IP: ip, Key: req.PublicKey, Created: r.stamp()}}, nil
}

// saveEnrolled sets the fields the device reports and its new credential
// secret on d, and stores it.
func (r *Registry) saveEnrolled(tx store.Tx, d *deviceRecord, req model.DeviceEnrollment, secret []byte) error {
	d.Name, d.DeviceType, d.OSVersion, d.Version = req.Name, req.DeviceType, req.OSVersion, req.Version
	if req.Posture != nil {
		d.Posture = req.Posture
	}
	if req.KeyProof != nil {
		d.ProofHash = hashSecret(req.KeyProof)
	}
	d.Updated, d.SecretHash = r.stamp(), hashSecret(secret)
	return putJSON(tx, collDevices, d.ID, d)
}

// ownedBy reports whether proof or own proves the request comes from d:
// proof matches the key proof d registered, or own is d's current credential.
func (d *deviceRecord) ownedBy(proof []byte, own Credential) bool {
	if d.ProofHash != nil && proof != nil && subtle.ConstantTimeCompare(hashSecret(proof), d.ProofHash) == 1 {
		return true
	}
	return own.ID == d.ID && own.Secret != nil && subtle.ConstantTimeCompare(hashSecret(own.Secret), d.SecretHash) == 1
}

// allocate returns the lowest free overlay address, skipping the range's
// first address (the edge's), the block kept for the edges of a cluster
// (model.EdgeReserved) and, for IPv4, its last.
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
		if !used[a] && !model.EdgeReserved(r.overlay, a) {
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
	if err := storeErr(err); err != nil {
		return model.Device{}, err
	}
	if err != nil || d.Revoked() || subtle.ConstantTimeCompare(hashSecret(secret), d.SecretHash) != 1 {
		return model.Device{}, model.Errorf(model.KindUnauthorized, "invalid device credential (revoked or unknown device)")
	}
	if d.SessionEnded(r.now()) {
		return model.Device{}, model.ErrSessionExpired(d.ID.String(), *d.SessionExpiresAt)
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

// UnrevokeDevice lifts the revocation of the revoked device named by ref (id,
// or name when one revoked device not yet lifted has it): its key may enroll
// again with an enrollment token. The record stays revoked and its credential
// stays dead: the device enrolls afresh.
func (r *Registry) UnrevokeDevice(ctx context.Context, ref string) (model.Device, error) {
	var d deviceRecord
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		d, err = resolve[deviceRecord](tx, collDevices, "revoked device", ref,
			func(d deviceRecord) (uuid.UUID, string, bool) { return d.ID, d.Name, !d.KeyBanned() })
		if err != nil {
			return err
		}
		now := r.stamp()
		d.UnrevokedAt, d.Updated = &now, now
		return putJSON(tx, collDevices, d.ID, d)
	})
	return d.Device, err
}

// SelectVNet switches the virtual network a device's traffic goes into.
func (r *Registry) SelectVNet(ctx context.Context, deviceID uuid.UUID, vnet string) (model.VNet, error) {
	var v model.VNet
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		d, err := getJSON[deviceRecord](tx, collDevices, deviceID)
		if err := storeErr(err); err != nil {
			return err
		}
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
		if err := storeErr(err); err != nil {
			return err
		}
		if err != nil || d.Revoked() {
			return model.Errorf(model.KindUnauthorized, "device %s is revoked or unknown", deviceID)
		}
		if d.SessionEnded(r.now()) {
			return model.ErrSessionExpired(d.ID.String(), *d.SessionExpiresAt)
		}
		v, err := deviceVNet(tx, d.Device)
		if err != nil {
			return err
		}
		st, err := splitTunnel(tx)
		if err != nil {
			return err
		}
		rules, err := loadAll[model.DNSResolver](tx, collDNSResolvers)
		if err != nil {
			return err
		}
		zone, err := dnsZone(tx)
		if err != nil {
			return err
		}
		nets, err := postureNetworks(tx)
		if err != nil {
			return err
		}
		cfg = model.DeviceConfig{DeviceID: d.ID, IP: d.IP, OverlayRange: r.overlay, VNetID: v.ID, VNetName: v.Name, SplitTunnel: st,
			DNS: deviceDNS(rules, v.ID, zone, model.EdgeAddress(r.overlay)), SessionExpiresAt: d.SessionExpiresAt,
			PostureNetworks: nets}
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
