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
	in := model.FlowTestInput{VNetID: vnet.ID, User: t.User, Groups: t.Groups, Posture: t.Posture,
		Src: t.Src, Dst: t.Dst, Protocol: t.Protocol, Port: t.Port}
	if t.Tunnel != "" {
		tun, err := s.reg.GetTunnel(ctx, t.Tunnel)
		if err != nil {
			return nil, err
		}
		in.TunnelID = tun.ID
		// A site's flow to a device is that device's user's.
		devices, err := s.reg.ListDevices(ctx, false)
		if err != nil {
			return nil, err
		}
		for _, d := range devices {
			if d.IP == t.Dst && d.VNetID == vnet.ID {
				flowTestIdentity(&in, t, d)
			}
		}
	}
	if t.Device != "" {
		d, err := s.device(r, t.Device)
		if err != nil {
			return nil, err
		}
		in.DeviceID = d.ID
		flowTestIdentity(&in, t, d)
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

// flowTestIdentity fills in the user, groups and posture of the flow's
// device d that the test does not give.
func flowTestIdentity(in *model.FlowTestInput, t model.FlowTest, d model.Device) {
	if t.User == "" {
		in.User = d.User
	}
	if t.Groups == nil {
		in.Groups = d.Groups
	}
	if t.Posture == nil {
		in.Posture = d.Posture
	}
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
