package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

const (
	// keyPostureNetworks is the settings key of the posture networks.
	keyPostureNetworks = "posture_networks"
	// maxPostureNetworks bounds the posture network list.
	maxPostureNetworks = 100
	// postureFuture and postureAge bound a report's CollectedAt around the
	// registry's clock: a device's clock may be off a little, not a day.
	postureFuture = 10 * time.Minute
	postureAge    = 24 * time.Hour
)

// ReportPosture stores what a live device reports about its host on its
// record; the write wakes the edge, whose policies then re-evaluate the
// device's flows. It returns the posture as stored.
func (r *Registry) ReportPosture(ctx context.Context, deviceID uuid.UUID, p model.Posture) (model.Posture, error) {
	if err := r.validatePosture(&p); err != nil {
		return model.Posture{}, err
	}
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		d, err := getJSON[deviceRecord](tx, collDevices, deviceID)
		if err := storeErr(err); err != nil {
			return err
		}
		if err != nil || d.Revoked() {
			return model.Errorf(model.KindUnauthorized, "report posture: device %s is revoked or unknown", deviceID)
		}
		d.Posture = &p
		return putJSON(tx, collDevices, d.ID, d)
	})
	return p, err
}

// validatePosture checks a report's fields (bounded text, a CollectedAt
// near the registry's clock) and normalizes CollectedAt to UTC.
func (r *Registry) validatePosture(p *model.Posture) error {
	for _, f := range []struct{ name, v string }{
		{"os", p.OS}, {"os_version", p.OSVersion}, {"kernel", p.Kernel}, {"client_version", p.ClientVersion},
		{"serial", p.Serial}, {"network", p.Network},
	} {
		if err := model.ValidateText("posture "+f.name, f.v, maxTextLen); err != nil {
			return err
		}
	}
	now := r.now()
	switch {
	case p.CollectedAt.IsZero():
		return model.Errorf(model.KindInvalid, "report posture: collected_at is missing")
	case p.CollectedAt.After(now.Add(postureFuture)):
		return model.Errorf(model.KindInvalid, "report posture: collected_at %s is in the future (the edge's clock says %s)", p.CollectedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case p.CollectedAt.Before(now.Add(-postureAge)):
		return model.Errorf(model.KindInvalid, "report posture: collected_at %s is more than %v old", p.CollectedAt.UTC().Format(time.RFC3339), postureAge)
	}
	p.CollectedAt = p.CollectedAt.UTC()
	return nil
}

// PostureNetworks lists the posture networks in the order they were added.
func (r *Registry) PostureNetworks(ctx context.Context) ([]model.PostureNetwork, error) {
	var out []model.PostureNetwork
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = postureNetworks(tx)
		return err
	})
	return out, err
}

// AddPostureNetwork adds a named network: clients with an address outside
// the tunnel in its prefix report themselves on it (Posture.Network); the
// first one that matches, in list order, wins.
func (r *Registry) AddPostureNetwork(ctx context.Context, n model.PostureNetwork) (model.PostureNetwork, error) {
	if err := model.ValidateName("posture network", n.Name); err != nil {
		return n, err
	}
	p, err := model.ParsePrefix(n.Prefix)
	if err != nil {
		return n, err
	}
	n.Prefix = p.String()
	_, err = r.st.Update(ctx, func(tx store.Tx) error {
		all, err := postureNetworks(tx)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(all, func(o model.PostureNetwork) bool { return o.Name == n.Name }) {
			return model.Errorf(model.KindConflict, "posture network %q already exists", n.Name)
		}
		if len(all) >= maxPostureNetworks {
			return model.Errorf(model.KindConflict, "the posture network list is full (%d networks)", maxPostureNetworks)
		}
		return putPostureNetworks(tx, append(all, n))
	})
	return n, err
}

// RemovePostureNetwork removes the posture network called name.
func (r *Registry) RemovePostureNetwork(ctx context.Context, name string) (model.PostureNetwork, error) {
	var gone model.PostureNetwork
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		all, err := postureNetworks(tx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(o model.PostureNetwork) bool { return o.Name == name })
		if i < 0 {
			return model.Errorf(model.KindNotFound, "posture network %q not found", name)
		}
		gone = all[i]
		return putPostureNetworks(tx, slices.Delete(all, i, i+1))
	})
	return gone, err
}

// postureNetworks reads the posture network list: nil until one is added.
func postureNetworks(tx store.Tx) ([]model.PostureNetwork, error) {
	buf, err := tx.Get(collSettings, keyPostureNetworks)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []model.PostureNetwork
	if err := json.Unmarshal(buf, &out); err != nil {
		return nil, fmt.Errorf("decode posture networks: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func putPostureNetworks(tx store.Tx, all []model.PostureNetwork) error {
	buf, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("encode posture networks: %w", err)
	}
	return tx.Put(collSettings, keyPostureNetworks, buf)
}
