package registry

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// CreateVNet creates a virtual network; a new default un-defaults the old one.
func (r *Registry) CreateVNet(ctx context.Context, req model.NewVNet) (model.VNet, error) {
	if err := model.ValidateName("virtual network", req.Name); err != nil {
		return model.VNet{}, err
	}
	if err := model.ValidateComment(req.Comment); err != nil {
		return model.VNet{}, err
	}
	v := model.VNet{ID: uuid.New(), Name: req.Name, Comment: req.Comment, IsDefault: req.IsDefault}
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		all, err := loadAll[model.VNet](tx, collVNets)
		if err != nil {
			return err
		}
		if err := checkVNetName(all, v.ID, v.Name); err != nil {
			return err
		}
		if v.IsDefault {
			if err := undefault(tx, all, v.ID); err != nil {
				return err
			}
		}
		v.CreatedAt = r.stamp()
		return putJSON(tx, collVNets, v.ID, v)
	})
	return v, err
}

// ListVNets returns the virtual networks that match f, oldest first.
func (r *Registry) ListVNets(ctx context.Context, f model.VNetFilter) ([]model.VNet, error) {
	var out []model.VNet
	err := r.st.View(ctx, func(tx store.Tx) error {
		all, err := loadAll[model.VNet](tx, collVNets)
		for _, v := range all {
			if (v.Deleted() && !f.ShowDeleted) || (f.ID != nil && v.ID != *f.ID) ||
				(f.Name != "" && v.Name != f.Name) || (f.IsDefault != nil && v.IsDefault != *f.IsDefault) {
				continue
			}
			out = append(out, v)
		}
		return err
	})
	sortByCreation(out, func(v model.VNet) (time.Time, string) { return v.CreatedAt, v.Name })
	return out, err
}

// GetVNet returns the live virtual network named by ref; "" means the default.
func (r *Registry) GetVNet(ctx context.Context, ref string) (model.VNet, error) {
	var v model.VNet
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		v, err = resolveVNet(tx, ref)
		return err
	})
	return v, err
}

// UpdateVNet changes a virtual network's name, comment or default flag.
// Making one the default un-defaults the old one; un-defaulting the default is
// refused, since there is always exactly one.
func (r *Registry) UpdateVNet(ctx context.Context, ref string, p model.VNetPatch) (model.VNet, error) {
	if p.Name != nil {
		if err := model.ValidateName("virtual network", *p.Name); err != nil {
			return model.VNet{}, err
		}
	}
	if p.Comment != nil {
		if err := model.ValidateComment(*p.Comment); err != nil {
			return model.VNet{}, err
		}
	}
	var v model.VNet
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if v, err = resolveVNet(tx, ref); err != nil {
			return err
		}
		all, err := loadAll[model.VNet](tx, collVNets)
		if err != nil {
			return err
		}
		if p.Name != nil {
			if err := checkVNetName(all, v.ID, *p.Name); err != nil {
				return err
			}
			v.Name = *p.Name
		}
		if p.Comment != nil {
			v.Comment = *p.Comment
		}
		if p.IsDefault != nil {
			switch {
			case *p.IsDefault && !v.IsDefault:
				if err := undefault(tx, all, v.ID); err != nil {
					return err
				}
				v.IsDefault = true
			case !*p.IsDefault && v.IsDefault:
				return model.Errorf(model.KindInvalid, "virtual network %s is the default; make another one the default instead", v.Name)
			}
		}
		return putJSON(tx, collVNets, v.ID, v)
	})
	return v, err
}

// DeleteVNet deletes a virtual network. It is refused for the default one, and
// while routes use it unless force, which deletes those routes too. It returns
// the number of routes deleted.
func (r *Registry) DeleteVNet(ctx context.Context, ref string, force bool) (int, error) {
	deleted := 0
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		deleted = 0
		if ref == "" {
			return model.Errorf(model.KindInvalid, "virtual network name or id is missing")
		}
		v, err := resolveVNet(tx, ref)
		if err != nil {
			return err
		}
		if v.IsDefault {
			return model.Errorf(model.KindForbidden, "virtual network %s is the default and cannot be deleted; make another one the default first", v.Name)
		}
		routes, err := liveRoutes(tx, func(rt model.Route) bool { return rt.VNetID == v.ID })
		if err != nil {
			return err
		}
		if len(routes) > 0 && !force {
			return model.Errorf(model.KindConflict, "virtual network %s is used by %d route(s); delete them first or use --force", v.Name, len(routes))
		}
		if err := refusePolicyUse(tx, "virtual network", model.SelVNet, v.Name, v.ID, force); err != nil {
			return err
		}
		now := r.stamp()
		if deleted, err = r.deleteRoutes(tx, routes, now); err != nil {
			return err
		}
		if err := deleteDNSResolvers(tx, v.ID); err != nil {
			return err
		}
		v.DeletedAt = &now
		return putJSON(tx, collVNets, v.ID, v)
	})
	return deleted, err
}

func checkVNetName(all []model.VNet, self uuid.UUID, name string) error {
	for _, o := range all {
		if !o.Deleted() && o.ID != self && o.Name == name {
			return model.Errorf(model.KindConflict, "a virtual network named %q already exists (id %s)", name, o.ID)
		}
	}
	return nil
}

func undefault(tx store.Tx, all []model.VNet, except uuid.UUID) error {
	for _, o := range all {
		if o.IsDefault && o.ID != except {
			o.IsDefault = false
			if err := putJSON(tx, collVNets, o.ID, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolveVNet finds a live virtual network by id or name; "" means the default.
func resolveVNet(tx store.Tx, ref string) (model.VNet, error) {
	if ref == "" {
		all, err := loadAll[model.VNet](tx, collVNets)
		if err != nil {
			return model.VNet{}, err
		}
		for _, v := range all {
			if v.IsDefault && !v.Deleted() {
				return v, nil
			}
		}
		return model.VNet{}, model.Errorf(model.KindInternal, "no default virtual network")
	}
	return resolve[model.VNet](tx, collVNets, "virtual network", ref,
		func(v model.VNet) (uuid.UUID, string, bool) { return v.ID, v.Name, v.Deleted() })
}

func sortByCreation[T any](s []T, key func(T) (time.Time, string)) {
	slices.SortStableFunc(s, func(a, b T) int {
		ta, na := key(a)
		tb, nb := key(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return cmp.Compare(na, nb)
	})
}
