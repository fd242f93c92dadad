package registry

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// DefaultDeletedRetention is how long deleted virtual networks, tunnels and
// routes stay visible (list --show-deleted) before PurgeDeleted removes them.
const DefaultDeletedRetention = 7 * 24 * time.Hour

// PurgeDeleted removes the virtual networks, tunnels and routes deleted more
// than retention ago, so that the store does not grow without bound, and
// returns how many records it removed. Until then they stay, marked deleted.
func (r *Registry) PurgeDeleted(ctx context.Context, retention time.Duration) (int, error) {
	if retention < 0 {
		return 0, model.Errorf(model.KindInvalid, "deleted-record retention %s is negative", retention)
	}
	cutoff := r.now().Add(-retention)
	n := 0
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		n = 0
		purge := func(coll string, id uuid.UUID, deletedAt *time.Time) error {
			if deletedAt == nil || !deletedAt.Before(cutoff) {
				return nil
			}
			n++
			return tx.Delete(coll, id.String())
		}
		vnets, err := loadAll[model.VNet](tx, collVNets)
		if err != nil {
			return err
		}
		for _, v := range vnets {
			if err := purge(collVNets, v.ID, v.DeletedAt); err != nil {
				return err
			}
		}
		tunnels, err := loadAll[tunnelRecord](tx, collTunnels)
		if err != nil {
			return err
		}
		for _, t := range tunnels {
			if err := purge(collTunnels, t.ID, t.DeletedAt); err != nil {
				return err
			}
		}
		routes, err := loadAll[model.Route](tx, collRoutes)
		if err != nil {
			return err
		}
		for _, rt := range routes {
			if err := purge(collRoutes, rt.ID, rt.DeletedAt); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
