package edge

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/router/policy"
)

// flowTester returns the API's TestFlow hook: it reads the registry's
// latest snapshot and judges the flow with judgeFlow.
func flowTester(reg *registry.Registry) func(context.Context, model.FlowTestInput) (model.FlowVerdict, error) {
	return func(ctx context.Context, in model.FlowTestInput) (model.FlowVerdict, error) {
		s, err := reg.Snapshot(ctx)
		if err != nil {
			return model.FlowVerdict{}, err
		}
		return judgeFlow(s, in)
	}
}

// judgeFlow compiles the snapshot's policies exactly as the data plane does
// (compileRules, policy.NewSet) and evaluates the flow's first packet with
// the router's engine, as the router would for a packet from in's sender.
// Virtual networks get indexes of their own here: rules and input only need
// to agree with each other.
func judgeFlow(s registry.Snapshot, in model.FlowTestInput) (model.FlowVerdict, error) {
	names := ruleNames{VNets: map[string]uint32{}, Tunnels: map[string][16]byte{}}
	vnet, known := uint32(0), false
	for i, v := range s.VNets {
		idx := uint32(i + 1)
		names.VNets[v.Name], names.VNets[v.ID.String()] = idx, idx
		if v.ID == in.VNetID {
			vnet, known = idx, true
		}
	}
	if !known {
		return model.FlowVerdict{}, model.Errorf(model.KindNotFound, "test flow: virtual network %s not found", in.VNetID)
	}
	for _, t := range s.Tunnels {
		names.Tunnels[t.Name], names.Tunnels[t.ID.String()] = t.ID, t.ID
	}
	rules, err := compileRules(s.Policies, names)
	if err != nil {
		return model.FlowVerdict{}, fmt.Errorf("test flow: %w", err)
	}
	set, err := policy.NewSet(rules, s.PolicyDefault != model.ActionBlock, uint64(s.Rev))
	if err != nil {
		return model.FlowVerdict{}, fmt.Errorf("test flow: %w", err)
	}
	pi := policy.Input{VNet: vnet, Src: in.Src, Dst: in.Dst, User: in.User,
		Site: in.TunnelID != uuid.Nil, Tunnel: in.TunnelID, Device: in.DeviceID}
	if in.User != "" || in.Groups != nil || in.Posture != nil {
		pi.Ident = deviceIdentity(&model.Device{User: in.User, Groups: in.Groups, Posture: in.Posture})
	}
	switch in.Protocol {
	case "tcp":
		pi.Proto, pi.HasPorts, pi.DstPort = policy.ProtoTCP, true, in.Port
	case "udp":
		pi.Proto, pi.HasPorts, pi.DstPort = policy.ProtoUDP, true, in.Port
	case "icmp":
		pi.Proto = policy.ProtoICMP
		if in.Src.Is6() {
			pi.Proto = policy.ProtoICMPv6
		}
	default:
		return model.FlowVerdict{}, model.Errorf(model.KindInvalid, "test flow: protocol %q is not tcp, udp or icmp", in.Protocol)
	}
	d := set.Evaluate(&pi)
	v := model.FlowVerdict{Action: model.ActionBlock, Silent: d.Silent, Rules: set.Len(), Rev: s.Rev}
	if d.Allow {
		v.Action = model.ActionAllow
	}
	if d.Policy != ([16]byte{}) {
		id := uuid.UUID(d.Policy)
		v.PolicyID = &id
	}
	return v, nil
}
