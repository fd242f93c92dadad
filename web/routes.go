package web

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

func init() {
	// sortPrefix orders networks by address, then length, in a sortable table.
	funcs["sortPrefix"] = func(p netip.Prefix) string {
		a := p.Addr().As16()
		return fmt.Sprintf("%x/%03d", a, p.Bits())
	}
	pageSets = append(pageSets, func(s *Server) {
		s.page("GET /routes", s.routesPage)
		s.page("POST /routes", s.addRoute)
		s.page("POST /routes/{id}/delete", s.deleteRoute)
		s.page("GET /routes/lookup", s.lookupRoute)
		s.page("GET /routes/reach", s.reachCIDR)
	})
}

// routesData is what the Routes page shows: the map, the overlaps, every
// route, and what the add form offers.
type routesData struct {
	VNets    []model.VNet
	Tunnels  []model.Tunnel
	Routes   []routeRow
	Overlaps []model.Overlap
	Map      routeMap
	Notice   string   // what the last change did
	Warnings []string // what the API warned of it
}

// routeRow is a route with the state of its tunnel.
type routeRow struct {
	model.Route
	Tunnel tunnelState
}

// loadRoutes reads everything the page shows from the API.
func (q *req) loadRoutes() (routesData, error) {
	ctx := q.r.Context()
	var d routesData
	var err error
	if d.VNets, err = q.api.ListVNets(ctx, model.VNetFilter{}); err != nil {
		return d, err
	}
	if d.Tunnels, err = q.api.ListTunnels(ctx, model.TunnelFilter{}); err != nil {
		return d, err
	}
	routes, err := q.api.ListRoutes(ctx, model.RouteFilter{})
	if err != nil {
		return d, err
	}
	if d.Overlaps, err = q.api.Overlaps(ctx); err != nil {
		return d, err
	}
	states := map[uuid.UUID]tunnelState{}
	for _, t := range d.Tunnels {
		states[t.ID] = stateOf(t)
	}
	slices.SortFunc(d.Tunnels, func(a, b model.Tunnel) int { return cmp.Compare(a.Name, b.Name) })
	d.VNets = sortVNets(d.VNets)
	for _, r := range routes {
		d.Routes = append(d.Routes, routeRow{Route: r, Tunnel: states[r.TunnelID]})
	}
	d.Map = buildMap(d.VNets, d.Tunnels, routes)
	return d, nil
}

func (s *Server) routesPage(q *req) error {
	d, err := q.loadRoutes()
	if err != nil {
		return err
	}
	return q.render("routes", "routes", "Routes", d)
}

// live answers a change: the map, the overlaps and the table again (an
// htmx swap of #routes-live), or the whole page for a plain form post.
func (q *req) live(notice string, warnings []string) error {
	if q.r.Header.Get("HX-Request") == "" {
		http.Redirect(q.w, q.r, "/routes", http.StatusSeeOther)
		return nil
	}
	d, err := q.loadRoutes()
	if err != nil {
		return err
	}
	d.Notice, d.Warnings = notice, warnings
	q.w.Header().Set("HX-Trigger", "routes-changed")
	return q.fragment("routes", "live", d)
}

// addRoute is `route ip add`: the API refuses a duplicate (1014) and a CIDR
// with host bits set, and the error is shown with nothing changed.
func (s *Server) addRoute(q *req) error {
	f := q.r.PostFormValue
	network := strings.TrimSpace(f("network"))
	p, err := netip.ParsePrefix(network)
	if err != nil {
		// Only syntax is checked here: the API says what is wrong with a
		// well-formed CIDR (host bits set, a range the edge owns).
		return model.Errorf(model.KindInvalid, "%q is not a valid CIDR (e.g. 192.0.2.0/24 or 2001:db8::/32)", network)
	}
	rt, err := q.api.AddRoute(q.r.Context(), model.NewRoute{Network: p, Tunnel: f("tunnel"), VNet: f("vnet"), Comment: f("comment")})
	if err != nil {
		return err
	}
	return q.live(fmt.Sprintf("Added route %s over tunnel %s in virtual network %s.", rt.Network, rt.TunnelName, rt.VNetName), rt.Warnings)
}

func (s *Server) deleteRoute(q *req) error {
	rt, err := q.api.DeleteRoute(q.r.Context(), "", q.r.PathValue("id"))
	if err != nil {
		return err
	}
	return q.live(fmt.Sprintf("Deleted route %s in virtual network %s.", rt.Network, rt.VNetName), nil)
}

// lookup is the answer to "which tunnel routes IP X" in one virtual network.
type lookup struct {
	VNet   string
	Winner *routeRow  // the longest prefix match, as `route ip get`; nil when none
	Beaten []routeRow // the other routes of the vnet that contain the IP, most specific first
	None   string     // the API's word when nothing matches
}

// lookupAnswer is the lookup box's answer, one lookup per virtual network asked.
type lookupAnswer struct {
	IP      netip.Addr
	Lookups []lookup
}

// lookupRoute answers "which tunnel routes IP X in vnet V" (every vnet when
// V is empty) with the API's own longest-prefix match, and the routes that
// also contain X and lost to it.
func (s *Server) lookupRoute(q *req) error {
	ctx := q.r.Context()
	ip, err := model.ParseAddr(q.r.FormValue("ip"))
	if err != nil {
		return err
	}
	names := []string{q.r.FormValue("vnet")}
	if names[0] == "" {
		vnets, err := q.api.ListVNets(ctx, model.VNetFilter{})
		if err != nil {
			return err
		}
		names = names[:0]
		for _, v := range sortVNets(vnets) {
			names = append(names, v.Name)
		}
	}
	states, err := q.tunnelStates()
	if err != nil {
		return err
	}
	a := lookupAnswer{IP: ip}
	host := netip.PrefixFrom(ip, ip.BitLen())
	for _, vn := range names {
		l := lookup{VNet: vn}
		win, err := q.api.GetRoute(ctx, vn, ip)
		var e *model.Error
		switch {
		case errors.As(err, &e) && e.Kind == model.KindNotFound:
			l.None = e.Message // no route matches (or no such vnet): the answer says so
		case err != nil:
			return err
		default:
			l.Winner = &routeRow{Route: win, Tunnel: states[win.TunnelID]}
			if win.Edge != "" {
				l.Winner.Tunnel.Edge = win.Edge
			}
			all, err := q.api.ListRoutes(ctx, model.RouteFilter{VNet: vn, SupersetOf: &host})
			if err != nil {
				return err
			}
			slices.SortFunc(all, func(a, b model.Route) int { return b.Network.Bits() - a.Network.Bits() })
			for _, r := range all {
				if r.ID != win.ID {
					l.Beaten = append(l.Beaten, routeRow{Route: r, Tunnel: states[r.TunnelID]})
				}
			}
		}
		a.Lookups = append(a.Lookups, l)
	}
	return q.fragment("routes", "lookup", a)
}

// reach is one route that is related to the CIDR asked about.
type reach struct {
	routeRow
	Relation string // equal, superset (contains C) or subset (inside C)
	Carries  bool   // the most specific route containing C: C's addresses go to its tunnel, but for subsets
}

// reachVNet is the related routes of one virtual network.
type reachVNet struct {
	VNet   string
	Routes []reach
}

// reachAnswer answers "how is CIDR C reached".
type reachAnswer struct {
	Asked  string       // what the operator typed
	CIDR   netip.Prefix // its network
	Masked bool         // the host bits were cleared
	VNets  []reachVNet
}

// reachCIDR answers "how is CIDR C reached": in each virtual network, the
// routes that equal C, contain it (supersets) or lie inside it (subsets).
func (s *Server) reachCIDR(q *req) error {
	ctx := q.r.Context()
	asked := strings.TrimSpace(q.r.FormValue("cidr"))
	p, err := netip.ParsePrefix(asked)
	if err != nil {
		return model.Errorf(model.KindInvalid, "%q is not a valid CIDR (e.g. 192.0.2.0/24 or 2001:db8::/32)", asked)
	}
	a := reachAnswer{Asked: asked, CIDR: p.Masked(), Masked: p != p.Masked()}
	p = p.Masked()
	supers, err := q.api.ListRoutes(ctx, model.RouteFilter{SupersetOf: &p})
	if err != nil {
		return err
	}
	subs, err := q.api.ListRoutes(ctx, model.RouteFilter{SubsetOf: &p})
	if err != nil {
		return err
	}
	states, err := q.tunnelStates()
	if err != nil {
		return err
	}
	byVNet := map[string]*reachVNet{}
	var order []string
	add := func(r model.Route, rel string) {
		v := byVNet[r.VNetName]
		if v == nil {
			v = &reachVNet{VNet: r.VNetName}
			byVNet[r.VNetName] = v
			order = append(order, r.VNetName)
		}
		for _, o := range v.Routes {
			if o.ID == r.ID {
				return
			}
		}
		v.Routes = append(v.Routes, reach{routeRow: routeRow{Route: r, Tunnel: states[r.TunnelID]}, Relation: rel})
	}
	for _, r := range supers {
		rel := "superset"
		if r.Network == p {
			rel = "equal"
		}
		add(r, rel)
	}
	for _, r := range subs {
		add(r, "subset")
	}
	slices.Sort(order)
	for _, name := range order {
		v := byVNet[name]
		slices.SortStableFunc(v.Routes, func(a, b reach) int { return a.Network.Bits() - b.Network.Bits() })
		best := -1
		for i, r := range v.Routes {
			if r.Relation != "subset" {
				best = i
			}
		}
		if best >= 0 {
			v.Routes[best].Carries = true
		}
		a.VNets = append(a.VNets, *v)
	}
	return q.fragment("routes", "reach", a)
}

// tunnelStates maps each tunnel to its state.
func (q *req) tunnelStates() (map[uuid.UUID]tunnelState, error) {
	tunnels, err := q.api.ListTunnels(q.r.Context(), model.TunnelFilter{})
	if err != nil {
		return nil, err
	}
	m := map[uuid.UUID]tunnelState{}
	for _, t := range tunnels {
		m[t.ID] = stateOf(t)
	}
	return m, nil
}

// sortVNets orders virtual networks the default first, then by name.
func sortVNets(vnets []model.VNet) []model.VNet {
	vnets = slices.Clone(vnets)
	slices.SortStableFunc(vnets, func(a, b model.VNet) int {
		if a.IsDefault != b.IsDefault {
			if a.IsDefault {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return vnets
}
