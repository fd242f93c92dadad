package registry

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/routing"
)

// AddRoute routes a network to a tunnel in a virtual network (the default one
// when req.VNet is empty). An exact duplicate in the same virtual network is
// refused with model.ErrRouteExists; the same network in another virtual
// network, and overlapping networks in one, are fine. With req.IfNotExists a
// duplicate to the same tunnel is returned as it is, Existing set, and
// nothing changes (an idempotent add); one to another tunnel is still
// ErrRouteExists. A network inside what belongs to devices and the edge
// (model.EdgeOwned) is refused; one that covers it (0.0.0.0/0) is added with
// a warning: the tunnel never gets it.
func (r *Registry) AddRoute(ctx context.Context, req model.NewRoute) (model.Route, error) {
	if err := model.ValidatePrefix(req.Network); err != nil {
		return model.Route{}, err
	}
	if err := model.ValidateComment(req.Comment); err != nil {
		return model.Route{}, err
	}
	warnings, err := r.checkEdgeOwned(req.Network)
	if err != nil {
		return model.Route{}, err
	}
	rt := model.Route{ID: uuid.New(), Network: req.Network, Comment: req.Comment}
	var existing *model.Route
	_, err = r.st.Update(ctx, func(tx store.Tx) error {
		existing = nil // Update may run this more than once
		v, err := resolveVNet(tx, req.VNet)
		if err != nil {
			return err
		}
		t, err := resolveTunnel(tx, req.Tunnel)
		if err != nil {
			return err
		}
		dup, err := liveRoutes(tx, func(o model.Route) bool { return o.VNetID == v.ID && o.Network == req.Network })
		if err != nil {
			return err
		}
		if len(dup) > 0 {
			if !req.IfNotExists || dup[0].TunnelID != t.ID {
				return model.ErrRouteExists
			}
			e := dup[0]
			e.TunnelName, e.VNetName, e.Existing = t.Name, v.Name, true
			existing = &e
			return nil
		}
		// A tunnel serves one virtual network: its connectors' packets carry no
		// mark that could tell two apart when they overlap.
		other, err := liveRoutes(tx, func(o model.Route) bool { return o.TunnelID == t.ID && o.VNetID != v.ID })
		if err != nil {
			return err
		}
		if len(other) > 0 {
			ov, _ := getJSON[model.VNet](tx, collVNets, other[0].VNetID)
			return model.Errorf(model.KindConflict, "tunnel %s already serves virtual network %s; a tunnel serves one virtual network, so create another tunnel for %s", t.Name, ov.Name, v.Name)
		}
		rt.TunnelID, rt.VNetID, rt.CreatedAt = t.ID, v.ID, r.stamp()
		if err := putJSON(tx, collRoutes, rt.ID, rt); err != nil {
			return err
		}
		rt.TunnelName, rt.VNetName = t.Name, v.Name
		return nil
	})
	if err == nil && existing != nil {
		rt = *existing
	}
	if err == nil {
		rt.Warnings = warnings
	}
	return rt, err
}

// checkEdgeOwned refuses a network that lies in the device overlay range or
// among the edges' own IPv6 addresses (model.EdgeBlock6): the edge routes
// those to devices and to itself, never to a tunnel. A network that covers
// them (0.0.0.0/0, 100.64.0.0/10, ::/0) is fine, since the rest of it is the
// tunnel's, but draws a warning.
func (r *Registry) checkEdgeOwned(p netip.Prefix) (warnings []string, err error) {
	for _, o := range model.EdgeOwned(r.overlay) {
		switch {
		case !p.Overlaps(o):
		case p.Bits() >= o.Bits() && o == model.EdgeBlock6:
			return nil, model.Errorf(model.KindInvalid, "route %s lies among the edges' own addresses %s (the edge's own address %s, and each edge's in a cluster): they are never routed to a tunnel", p, o, model.EdgeAddress6)
		case p.Bits() >= o.Bits():
			return nil, model.Errorf(model.KindInvalid, "route %s lies in the device overlay range %s: devices and the edge (%s) hold those addresses, and the edge never routes them to a tunnel", p, o, model.EdgeAddress(o))
		case o == model.EdgeBlock6:
			warnings = append(warnings, fmt.Sprintf("route %s covers the edge's own address %s (and the edges' %s): they stay the edges'; the tunnel may never send from them", p, model.EdgeAddress6, o))
		default:
			warnings = append(warnings, fmt.Sprintf("route %s covers the device overlay range %s: those addresses stay with devices and the edge (%s); the tunnel may never send from them, and its connectors keep routing them to the edge", p, o, model.EdgeAddress(o)))
		}
	}
	return warnings, nil
}

// ListRoutes returns the routes that match f, ordered by virtual network and network.
func (r *Registry) ListRoutes(ctx context.Context, f model.RouteFilter) ([]model.Route, error) {
	var out []model.Route
	err := r.st.View(ctx, func(tx store.Tx) error {
		var vnetID, tunnelID uuid.UUID
		if f.VNet != "" {
			v, err := resolveVNet(tx, f.VNet)
			if err != nil {
				return err
			}
			vnetID = v.ID
		}
		if f.Tunnel != "" {
			t, err := resolveTunnel(tx, f.Tunnel)
			if err != nil {
				return err
			}
			tunnelID = t.ID
		}
		all, err := loadAll[model.Route](tx, collRoutes)
		if err != nil {
			return err
		}
		for _, rt := range all {
			switch {
			case rt.Deleted() && !f.ShowDeleted,
				vnetID != uuid.Nil && rt.VNetID != vnetID,
				tunnelID != uuid.Nil && rt.TunnelID != tunnelID,
				f.SubsetOf != nil && !isSubset(rt.Network, *f.SubsetOf),
				f.SupersetOf != nil && !isSubset(*f.SupersetOf, rt.Network),
				f.Comment != nil && rt.Comment != *f.Comment:
				continue
			}
			out = append(out, rt)
		}
		return fillNames(tx, out)
	})
	slices.SortFunc(out, func(a, b model.Route) int {
		if c := cmp.Compare(a.VNetName, b.VNetName); c != 0 {
			return c
		}
		return comparePrefix(a.Network, b.Network)
	})
	return out, err
}

// GetRoute returns the route in virtual network vnet ("" for the default) whose
// network is the longest prefix containing ip.
func (r *Registry) GetRoute(ctx context.Context, vnet string, ip netip.Addr) (model.Route, error) {
	if !ip.IsValid() {
		return model.Route{}, model.Errorf(model.KindInvalid, "IP address is missing or invalid")
	}
	ip = ip.Unmap()
	var rt model.Route
	err := r.st.View(ctx, func(tx store.Tx) error {
		v, err := resolveVNet(tx, vnet)
		if err != nil {
			return err
		}
		routes, err := liveRoutes(tx, func(o model.Route) bool { return o.VNetID == v.ID })
		if err != nil {
			return err
		}
		var table routing.Table[int]
		for i, o := range routes {
			table.Insert(o.Network, i)
		}
		i, ok := table.Lookup(ip)
		if !ok {
			return model.Errorf(model.KindNotFound, "No route matches the IP %s", ip)
		}
		rt = routes[i]
		one := []model.Route{rt}
		err = fillNames(tx, one)
		rt = one[0]
		return err
	})
	return rt, err
}

// DeleteRoute deletes a route named by id, or by CIDR within virtual network
// vnet ("" for the default). It returns the deleted route.
func (r *Registry) DeleteRoute(ctx context.Context, vnet, ref string) (model.Route, error) {
	var rt model.Route
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if rt, err = findRoute(tx, vnet, ref); err != nil {
			return err
		}
		now := r.stamp()
		rt.DeletedAt = &now
		if err := putJSON(tx, collRoutes, rt.ID, rt); err != nil {
			return err
		}
		one := []model.Route{rt}
		err = fillNames(tx, one)
		rt = one[0]
		return err
	})
	return rt, err
}

func findRoute(tx store.Tx, vnet, ref string) (model.Route, error) {
	if id, err := uuid.Parse(ref); err == nil {
		rt, err := getJSON[model.Route](tx, collRoutes, id)
		if err == nil && !rt.Deleted() {
			if vnet == "" {
				return rt, nil
			}
			v, err := resolveVNet(tx, vnet)
			if err != nil {
				return model.Route{}, err
			}
			if v.ID == rt.VNetID {
				return rt, nil
			}
		}
		return model.Route{}, model.Errorf(model.KindNotFound, "route %s not found", ref)
	}
	p, err := model.ParsePrefix(ref)
	if err != nil {
		return model.Route{}, model.Errorf(model.KindInvalid, "%q is neither a route id nor a valid CIDR", ref)
	}
	v, err := resolveVNet(tx, vnet)
	if err != nil {
		return model.Route{}, err
	}
	routes, err := liveRoutes(tx, func(o model.Route) bool { return o.VNetID == v.ID && o.Network == p })
	if err != nil {
		return model.Route{}, err
	}
	if len(routes) == 0 {
		return model.Route{}, model.Errorf(model.KindNotFound, "no route for %s in virtual network %s", p, v.Name)
	}
	return routes[0], nil
}

// Overlaps returns every group of live routes whose networks overlap across two
// or more virtual networks: which CIDRs overlap, and in which virtual networks.
// Each group lists only the routes that overlap a route of another virtual
// network; its Network is the widest network of the group.
func (r *Registry) Overlaps(ctx context.Context) ([]model.Overlap, error) {
	var routes []model.Route
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		if routes, err = liveRoutes(tx, nil); err != nil {
			return err
		}
		return fillNames(tx, routes)
	})
	if err != nil {
		return nil, err
	}
	// Sorted by address then length, a group's widest network comes first and
	// every network that overlaps it follows before any that does not.
	slices.SortFunc(routes, func(a, b model.Route) int {
		if c := comparePrefix(a.Network, b.Network); c != 0 {
			return c
		}
		return cmp.Compare(a.VNetName, b.VNetName)
	})
	var out []model.Overlap
	for start := 0; start < len(routes); {
		end := start + 1
		for end < len(routes) && routes[start].Network.Overlaps(routes[end].Network) {
			end++
		}
		group := routes[start:end]
		var kept []model.Route
		for i, a := range group {
			for j, b := range group {
				if i != j && a.VNetID != b.VNetID && a.Network.Overlaps(b.Network) {
					kept = append(kept, a)
					break
				}
			}
		}
		if len(kept) > 0 {
			out = append(out, model.Overlap{Network: group[0].Network, Routes: kept})
		}
		start = end
	}
	return out, nil
}

// liveRoutes returns the routes that are not deleted and satisfy keep (nil keeps all).
func liveRoutes(tx store.Tx, keep func(model.Route) bool) ([]model.Route, error) {
	all, err := loadAll[model.Route](tx, collRoutes)
	out := all[:0]
	for _, rt := range all {
		if !rt.Deleted() && (keep == nil || keep(rt)) {
			out = append(out, rt)
		}
	}
	return out, err
}

// fillNames sets the tunnel and virtual network names of routes.
func fillNames(tx store.Tx, routes []model.Route) error {
	if len(routes) == 0 {
		return nil
	}
	vnets, err := loadAll[model.VNet](tx, collVNets)
	if err != nil {
		return err
	}
	tunnels, err := loadAll[tunnelRecord](tx, collTunnels)
	if err != nil {
		return err
	}
	vname := make(map[uuid.UUID]string, len(vnets))
	for _, v := range vnets {
		vname[v.ID] = v.Name
	}
	tname := make(map[uuid.UUID]string, len(tunnels))
	for _, t := range tunnels {
		tname[t.ID] = t.Name
	}
	for i := range routes {
		routes[i].VNetName = vname[routes[i].VNetID]
		routes[i].TunnelName = tname[routes[i].TunnelID]
	}
	return nil
}

// isSubset reports whether network a lies within network b.
func isSubset(a, b netip.Prefix) bool {
	return a.Addr().Is4() == b.Addr().Is4() && a.Bits() >= b.Bits() && b.Contains(a.Addr())
}

// comparePrefix orders IPv4 before IPv6, then by address, then shorter first.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
