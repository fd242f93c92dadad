//go:build linux

package e2e

import (
	be "encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/switchyard/switchyard/internal/lab"
)

// TestAutoFallsBackToMASQUE blocks WireGuard's UDP port in the lab's WAN
// router: connectors in auto mode get no WireGuard handshake, fall back to
// MASQUE, and the sites reach each other with their true source addresses.
// Once the port opens again they go back to WireGuard.
func TestAutoFallsBackToMASQUE(t *testing.T) {
	w := newWorld(t)
	w.protocol = "auto"
	w.agentFlags = []string{"--wireguard-retry", "10s"}
	dropped, unblock := blockUDPPort(t, w.wan, 51820)
	w.startEdge()
	tokA, tokC := w.tunnelToken("site-a"), w.tunnelToken("site-c")
	w.cli("tunnel", "route", "ip", "add", "10.1.0.0/16", "site-a")
	w.cli("tunnel", "route", "ip", "add", "10.3.0.0/16", "site-c")
	connA := w.startConnector(w.gwa, "gwa", tokA)
	connC := w.startConnector(w.gwc, "gwc", tokC)
	for _, p := range []*lab.Proc{connA, connC} {
		must(t, p.WaitFor("no WireGuard handshake; falling back to MASQUE", 20*time.Second))
		must(t, p.WaitFor("protocol=masque", 20*time.Second))
	}
	w.hostc.Echo(t, "10.3.0.5:7000")
	w.hosta.Echo(t, "10.1.2.3:7000")
	wantPeer(t, w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3")
	wantPeer(t, w.hostc, "udp", "10.1.2.3:7000", "10.3.0.5")
	must(t, w.hosta.Ping("10.3.0.5", 2))
	if n := dropped(); n == 0 {
		t.Fatal("the WAN router dropped no WireGuard packet: the test did not block anything")
	}
	if strings.Contains(connA.Output(), "protocol=wireguard") {
		t.Fatalf("connector A says it connected over WireGuard through the block:\n%s", connA.Output())
	}

	unblock()
	for _, p := range []*lab.Proc{connA, connC} {
		must(t, p.WaitFor("protocol=wireguard", 30*time.Second))
	}
	wantPeer(t, w.hosta, "tcp", "10.3.0.5:7000", "10.1.2.3")
}

// blockUDPPort adds an nftables rule to ns that drops forwarded UDP packets
// to port (the table goes with the namespace); it returns a function that
// reads how many packets the rule dropped, and one that removes the rule.
func blockUDPPort(t *testing.T, ns *lab.NS, port uint16) (dropped func() uint64, unblock func()) {
	t.Helper()
	table := &nftables.Table{Name: "switchyard_test_block", Family: nftables.TableFamilyINet}
	counter := &nftables.CounterObj{Table: table, Name: "dropped"}
	must(t, ns.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return fmt.Errorf("open nftables in %s: %w", ns, err)
		}
		c.AddTable(table)
		c.AddObj(counter)
		drop := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "forward", Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		dport := make([]byte, 2)
		be.BigEndian.PutUint16(dport, port)
		c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dport},
			&expr.Objref{Type: 1, Name: counter.Name}, // 1: NFT_OBJECT_COUNTER
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("block udp port %d in %s: %w", port, ns, err)
		}
		return nil
	}))
	unblock = func() {
		must(t, ns.Do(func() error {
			c, err := nftables.New()
			if err != nil {
				return err
			}
			c.DelTable(table)
			return c.Flush()
		}))
	}
	return func() uint64 {
		var n uint64
		err := ns.Do(func() error {
			c, err := nftables.New()
			if err != nil {
				return err
			}
			obj, err := c.GetObject(counter)
			if err != nil {
				return fmt.Errorf("read the drop counter in %s: %w", ns, err)
			}
			if co, ok := obj.(*nftables.CounterObj); ok {
				n = co.Packets
			}
			return nil
		})
		must(t, err)
		return n
	}, unblock
}
