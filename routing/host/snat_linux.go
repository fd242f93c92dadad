//go:build linux

package host

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// snatTable is the nftables table that holds a connector's opt-in SNAT rule;
// one per TUN, so that it can be removed without touching anyone else's rules.
func snatTable(iface string) *nftables.Table {
	return &nftables.Table{Name: "switchyard_" + iface, Family: nftables.TableFamilyINet}
}

// EnableSNAT masquerades packets that arrive from iface (the TUN) and leave
// through another interface, for sites whose hosts cannot route replies back
// to the connector. It hides the true source address, so it is opt-in
// (`connector run --snat`). It replaces any rule a previous run left.
func EnableSNAT(iface string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("enable snat on %s: open nftables: %w", iface, err)
	}
	t := snatTable(iface)
	c.AddTable(t)
	c.DelTable(t) // start from an empty table, in the same transaction
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, iface)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Masq{},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("enable snat on %s: %w", iface, err)
	}
	return nil
}

// DisableSNAT removes the SNAT rule of iface; a missing one is not an error.
func DisableSNAT(iface string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("disable snat on %s: open nftables: %w", iface, err)
	}
	c.DelTable(snatTable(iface))
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("disable snat on %s: %w", iface, err)
	}
	return nil
}
