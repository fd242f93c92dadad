//go:build linux

package host

import (
	"bytes"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

var _ FirewallInspector = (*NetlinkOps)(nil)

// ForwardChains implements FirewallInspector in the Ops' namespace.
func (o *NetlinkOps) ForwardChains() ([]ForwardChain, error) {
	var opts []nftables.ConnOption
	if o.ns.IsOpen() {
		opts = append(opts, nftables.WithNetNSFd(int(o.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("read the nftables ruleset: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("read the nftables chains: %w", err)
	}
	var out []ForwardChain
	for _, ch := range chains {
		family, ok := familyName(ch.Table)
		if !ok || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward {
			continue
		}
		fc := ForwardChain{
			Family:     family,
			Table:      ch.Table.Name,
			Chain:      ch.Name,
			PolicyDrop: ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop,
			IPTables:   family != "inet" && ch.Table.Name == "filter" && ch.Name == "FORWARD",
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("read the rules of %s %s %s: %w", family, ch.Table.Name, ch.Name, err)
		}
		for _, r := range rules {
			in, out := acceptedIfaces(r.Exprs)
			fc.AcceptIn = append(fc.AcceptIn, in...)
			fc.AcceptOut = append(fc.AcceptOut, out...)
		}
		out = append(out, fc)
	}
	return out, nil
}

// familyName names the families whose forward hook routed packets take.
func familyName(t *nftables.Table) (string, bool) {
	if t == nil {
		return "", false
	}
	switch t.Family {
	case nftables.TableFamilyINet:
		return "inet", true
	case nftables.TableFamilyIPv4:
		return "ip", true
	case nftables.TableFamilyIPv6:
		return "ip6", true
	}
	return "", false
}

// acceptedIfaces returns the iifname and oifname a rule compares with, if
// it ends in accept. A name with a trailing "*" (a prefix match, as
// iptables' "sy+") comes back that way.
func acceptedIfaces(exprs []expr.Any) (in, out []string) {
	if len(exprs) == 0 {
		return nil, nil
	}
	if v, ok := exprs[len(exprs)-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictAccept {
		return nil, nil
	}
	regs := map[uint32]expr.MetaKey{}
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if !e.SourceRegister {
				regs[e.Register] = e.Key
			}
		case *expr.Cmp:
			key, ok := regs[e.Register]
			if !ok || e.Op != expr.CmpOpEq {
				continue
			}
			name := string(bytes.TrimRight(e.Data, "\x00"))
			if !bytes.HasSuffix(e.Data, []byte{0}) {
				name += "*" // compared without the terminator: a prefix
			}
			switch key {
			case expr.MetaKeyIIFNAME:
				in = append(in, name)
			case expr.MetaKeyOIFNAME:
				out = append(out, name)
			}
		}
	}
	return in, out
}
