package api

import (
	"net/http"

	"github.com/switchyard/switchyard/control/model"
)

// testFlow answers POST /v1/policies/test: which policy the edge's own
// engine applies to a flow's first packet, and what it does. Names are
// resolved here; the edge judges the ids (Options.TestFlow).
func (s *Server) testFlow(r *http.Request) (any, error) {
	var t model.FlowTest
	if err := decode(r, &t); err != nil {
		return nil, err
	}
	if err := model.ValidateFlowTest(t); err != nil {
		return nil, err
	}
	if s.opts.TestFlow == nil {
		return nil, model.Errorf(model.KindNotFound, "this server has no policy engine to test flows with")
	}
	ctx := r.Context()
	vnet, err := s.reg.GetVNet(ctx, t.VNet)
	if err != nil {
		return nil, err
	}
	in := model.FlowTestInput{VNetID: vnet.ID, User: t.User, Src: t.Src, Dst: t.Dst, Protocol: t.Protocol, Port: t.Port}
	if t.Tunnel != "" {
		tun, err := s.reg.GetTunnel(ctx, t.Tunnel)
		if err != nil {
			return nil, err
		}
		in.TunnelID = tun.ID
	}
	if t.Device != "" {
		d, err := s.device(r, t.Device)
		if err != nil {
			return nil, err
		}
		in.DeviceID = d.ID
		if in.User == "" {
			in.User = d.User
		}
	}
	v, err := s.opts.TestFlow(ctx, in)
	if err != nil {
		return nil, err
	}
	v.VNetName = vnet.Name
	if v.PolicyID != nil {
		p, err := s.reg.GetPolicy(ctx, v.PolicyID.String())
		if err != nil {
			return nil, err
		}
		v.Policy = &p
	}
	return v, nil
}

// device finds the live device named by ref, its id or its name.
func (s *Server) device(r *http.Request, ref string) (model.Device, error) {
	devices, err := s.reg.ListDevices(r.Context(), false)
	if err != nil {
		return model.Device{}, err
	}
	var found []model.Device
	for _, d := range devices {
		if d.ID.String() == ref {
			return d, nil
		}
		if d.Name == ref {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return model.Device{}, model.Errorf(model.KindNotFound, "device %q not found", ref)
	case 1:
		return found[0], nil
	}
	return model.Device{}, model.Errorf(model.KindInvalid, "device name %q is ambiguous: use its id", ref)
}
