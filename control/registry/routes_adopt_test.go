package registry

import (
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// An add with IfNotExists adopts the route when network, vnet and tunnel
// all match, and changes nothing; a duplicate to another tunnel, or one
// without IfNotExists, is still ErrRouteExists (1014).
func TestAddRouteIfNotExists(t *testing.T) {
	r := newRegistry(t)
	must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "t1"}))
	must2(t)(r.CreateTunnel(ctx, model.NewTunnel{Name: "t2"}))
	first := must(r.AddRoute(ctx, model.NewRoute{Network: mpp("192.0.2.0/24"), Tunnel: "t1", Comment: "site a", IfNotExists: true}))(t)
	if first.Existing {
		t.Fatalf("first add says the route existed: %+v", first)
	}
	again := must(r.AddRoute(ctx, model.NewRoute{Network: mpp("192.0.2.0/24"), Tunnel: "t1", VNet: "default", Comment: "other comment", IfNotExists: true}))(t)
	if !again.Existing || again.ID != first.ID || again.Comment != "site a" || again.TunnelName != "t1" || again.VNetName != "default" {
		t.Fatalf("adopting add returned %+v, want the existing route %+v with existing set", again, first)
	}
	for _, req := range []model.NewRoute{
		{Network: mpp("192.0.2.0/24"), Tunnel: "t2", IfNotExists: true}, // another tunnel
		{Network: mpp("192.0.2.0/24"), Tunnel: "t1"},                    // no if-not-exists
	} {
		_, err := r.AddRoute(ctx, req)
		if e := model.AsError(err); err == nil || e.Code != model.CodeRouteExists {
			t.Fatalf("add %+v: got %v, want code %d", req, err, model.CodeRouteExists)
		}
	}
	routes := must(r.ListRoutes(ctx, model.RouteFilter{}))(t)
	if len(routes) != 1 || routes[0].ID != first.ID || routes[0].Existing {
		t.Fatalf("routes after the adds: %+v, want the first alone", routes)
	}
}
