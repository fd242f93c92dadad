package registry

import (
	"context"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// RegisterDevice registers a stock WireGuard device by its public key and
// gives it an overlay address: the edge peers with the key as with any
// device's, but the device has no credential (it never talks to the API)
// and its private key never reaches the edge. Its name must be free among
// the live devices, its key unused and not revoked, its vnet existing;
// otherwise nothing is registered.
func (r *Registry) RegisterDevice(ctx context.Context, req model.RegisterDevice) (model.Device, error) {
	if err := model.ValidateKey(req.PublicKey); err != nil {
		return model.Device{}, err
	}
	if err := model.ValidateName("device", req.Name); err != nil {
		return model.Device{}, err
	}
	if req.User != "" {
		if err := model.ValidateUser(req.User); err != nil {
			return model.Device{}, err
		}
	}
	var d deviceRecord
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		all, err := loadAll[deviceRecord](tx, collDevices)
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.Name == req.Name && !o.Revoked() {
				return model.Errorf(model.KindConflict, "register device: the name %q is taken by device %s", req.Name, o.ID)
			}
		}
		if err := checkKeyUnused(tx, req.PublicKey, uuid.Nil); err != nil {
			return err
		}
		var vnet uuid.UUID // the default, followed
		if req.VNet != "" {
			v, err := resolveVNet(tx, req.VNet)
			if err != nil {
				return err
			}
			vnet = v.ID
		}
		ip, err := r.allocate(all)
		if err != nil {
			return err
		}
		now := r.stamp()
		d = deviceRecord{Device: model.Device{ID: uuid.New(), Name: req.Name, DeviceType: model.DeviceTypeWireGuard,
			IP: ip, Key: req.PublicKey, Created: now, Updated: now, User: req.User, VNetID: vnet}}
		return putJSON(tx, collDevices, d.ID, d)
	})
	if err != nil {
		return model.Device{}, err
	}
	return d.Device, nil
}
