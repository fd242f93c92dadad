package web

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
)

// routeMap is the Routes page's map, drawn as an SVG tree: virtual networks
// on the left, their tunnels in the middle, the tunnels' routes on the
// right. Every coordinate is computed here, so that the template only
// places what it is given.
type routeMap struct {
	Width, Height int
	Heads         []mapNode // the columns' headings
	VNets         []mapNode
	Tunnels       []mapNode
	Routes        []mapNode
	Links         []mapLink
}

// mapNode is one box of the map.
type mapNode struct {
	ID         string // the record's id, for tests and highlighting
	X, Y, W, H int
	TX, TY     int    // where the label starts
	Label      string // the first line
	Sub        string // the second line, if any
	SX, SY     int    // where the second line starts
	CX, CY     int    // a tunnel's state dot
	Class      string // CSS classes beyond the node kind's
	Title      string // the tooltip
}

// mapLink is one curve from a parent's right side to a child's left side.
type mapLink struct {
	D     string // the SVG path
	Class string
}

// Map geometry, in SVG user units (the SVG scales to the page's width).
const (
	mapRowH     = 30  // one route row
	mapGroupGap = 18  // between virtual networks
	mapVNetX    = 8   // column of virtual networks
	mapVNetW    = 170 //
	mapTunnelX  = 290 // column of tunnels
	mapTunnelW  = 230
	mapRouteX   = 640 // column of routes
	mapRouteW   = 176
	mapWidth    = 1160
	mapNodeH    = 24
	mapTunnelH  = 40
)

// tunnelState is what the map and tables say of a tunnel: up when it has a
// connection, and in a cluster the edge carrying its active replica.
type tunnelState struct {
	Up       bool
	Replicas int
	Edge     string
}

func stateOf(t model.Tunnel) tunnelState {
	s := tunnelState{Up: len(t.Connections) > 0, Replicas: len(t.Connections)}
	for _, c := range t.Connections {
		if c.State == model.ReplicaActive {
			s.Edge = c.Edge
		}
	}
	return s
}

// label is a tunnel's second line on the map.
func (s tunnelState) label() string {
	if !s.Up {
		return "down · no connection"
	}
	l := "up · " + strconv.Itoa(s.Replicas) + " replica"
	if s.Replicas != 1 {
		l += "s"
	}
	if s.Edge != "" {
		l += " · edge " + s.Edge
	}
	return l
}

// buildMap lays out vnets → tunnels → routes. Each vnet's routes are
// grouped by tunnel (a tunnel serves one vnet); a tunnel sits at the middle
// of its routes and a vnet at the middle of its tunnels. Tunnels without a
// route come last, under no vnet.
func buildMap(vnets []model.VNet, tunnels []model.Tunnel, routes []model.Route) routeMap {
	m := routeMap{Width: mapWidth}
	for _, h := range []struct {
		x    int
		text string
	}{{mapVNetX, "Virtual networks"}, {mapTunnelX, "Tunnels"}, {mapRouteX, "Routes"}} {
		m.Heads = append(m.Heads, mapNode{TX: h.x, TY: 16, Label: h.text})
	}
	byVNet := map[uuid.UUID]map[uuid.UUID][]model.Route{}
	for _, r := range routes {
		if byVNet[r.VNetID] == nil {
			byVNet[r.VNetID] = map[uuid.UUID][]model.Route{}
		}
		byVNet[r.VNetID][r.TunnelID] = append(byVNet[r.VNetID][r.TunnelID], r)
	}
	tunnelByID := map[uuid.UUID]model.Tunnel{}
	for _, t := range tunnels {
		tunnelByID[t.ID] = t
	}
	placed := map[uuid.UUID]bool{}
	y := 30
	for _, v := range sortVNets(vnets) {
		top := y
		var tunnelMids []int
		var ids []uuid.UUID
		for id := range byVNet[v.ID] {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b uuid.UUID) int {
			return cmp.Compare(byVNet[v.ID][a][0].TunnelName, byVNet[v.ID][b][0].TunnelName)
		})
		for _, id := range ids {
			rs := byVNet[v.ID][id]
			t, ok := tunnelByID[id]
			if !ok {
				t = model.Tunnel{ID: id, Name: rs[0].TunnelName}
			}
			placed[id] = true
			rows := max(len(rs), 2)
			mid := y + rows*mapRowH/2
			tn := tunnelNode(t, mid)
			m.Tunnels = append(m.Tunnels, tn)
			tunnelMids = append(tunnelMids, mid)
			first := y + (rows-len(rs))*mapRowH/2
			for i, r := range rs {
				ry := first + i*mapRowH + mapRowH/2
				m.Routes = append(m.Routes, routeNode(r, ry))
				m.Links = append(m.Links, link(mapTunnelX+mapTunnelW, mid, mapRouteX, ry, "link-route"))
			}
			y += rows * mapRowH
		}
		if len(ids) == 0 {
			y += mapRowH
		}
		vmid := (top + y) / 2
		vn := mapNode{ID: v.ID.String(), X: mapVNetX, Y: vmid - mapNodeH/2, W: mapVNetW, H: mapNodeH,
			TX: mapVNetX + 10, TY: vmid + 4, Label: v.Name, Title: "virtual network " + v.Name}
		if v.IsDefault {
			vn.Class = "default"
			vn.Title += " (the default)"
		}
		if len(ids) == 0 {
			vn.Class += " empty"
			vn.Sub, vn.SX, vn.SY = "no routes", mapVNetX+mapVNetW+10, vmid+4
		}
		m.VNets = append(m.VNets, vn)
		for _, tm := range tunnelMids {
			m.Links = append(m.Links, link(mapVNetX+mapVNetW, vmid, mapTunnelX, tm, "link-tunnel"))
		}
		y += mapGroupGap
	}
	for _, t := range tunnels {
		if placed[t.ID] {
			continue
		}
		tn := tunnelNode(t, y+mapRowH)
		tn.Class += " unrouted"
		tn.Title += "; no routes"
		m.Tunnels = append(m.Tunnels, tn)
		y += 2 * mapRowH
	}
	m.Height = y + 8
	return m
}

func tunnelNode(t model.Tunnel, mid int) mapNode {
	s := stateOf(t)
	n := mapNode{ID: t.ID.String(), X: mapTunnelX, Y: mid - mapTunnelH/2, W: mapTunnelW, H: mapTunnelH,
		TX: mapTunnelX + 22, TY: mid - 3, SX: mapTunnelX + 22, SY: mid + 13, CX: mapTunnelX + 12, CY: mid - 7, Label: t.Name, Sub: s.label(), Class: "down",
		Title: "tunnel " + t.Name + ": " + s.label()}
	if s.Up {
		n.Class = "up"
	}
	return n
}

func routeNode(r model.Route, mid int) mapNode {
	n := mapNode{ID: r.ID.String(), X: mapRouteX, Y: mid - mapNodeH/2, W: mapRouteW, H: mapNodeH,
		TX: mapRouteX + 10, TY: mid + 4, Label: r.Network.String(), Sub: r.Comment,
		Title: r.Network.String() + " via " + r.TunnelName + " in " + r.VNetName}
	if r.Comment != "" {
		n.SX, n.SY = mapRouteX+mapRouteW+10, mid+4
		n.Title += ": " + r.Comment
	}
	return n
}

// link draws a horizontal S-curve from (x1,y1) to (x2,y2).
func link(x1, y1, x2, y2 int, class string) mapLink {
	mx := strconv.Itoa((x1 + x2) / 2)
	p := func(x, y int) string { return strconv.Itoa(x) + " " + strconv.Itoa(y) }
	return mapLink{D: "M" + p(x1, y1) + " C" + mx + " " + strconv.Itoa(y1) + ", " + mx + " " + strconv.Itoa(y2) + ", " + p(x2, y2), Class: class}
}
