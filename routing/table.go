// Package routing holds longest-prefix-match tables over netip prefixes, shared
// by the control plane's lookups and the edge's data path. (Host routes and
// sysctls via netlink join it in later work.)
package routing

import (
	"iter"
	"net/netip"

	"github.com/gaissmai/bart"
)

// Table maps IPv4 and IPv6 prefixes to values and answers longest-prefix-match
// lookups without allocating. The zero value is an empty table. A Table is not
// safe for concurrent writes; readers may share one that no longer changes.
type Table[V any] struct {
	t bart.Table[V]
}

// Insert adds or replaces the value for prefix p; p is masked to its network.
func (t *Table[V]) Insert(p netip.Prefix, v V) { t.t.Insert(p.Masked(), v) }

// Delete removes prefix p.
func (t *Table[V]) Delete(p netip.Prefix) { t.t.Delete(p.Masked()) }

// Get returns the value stored for exactly prefix p.
func (t *Table[V]) Get(p netip.Prefix) (V, bool) { return t.t.Get(p.Masked()) }

// Lookup returns the value of the longest prefix that contains ip.
func (t *Table[V]) Lookup(ip netip.Addr) (V, bool) { return t.t.Lookup(ip.Unmap()) }

// LookupPrefix returns the longest stored prefix that contains ip, with its value.
func (t *Table[V]) LookupPrefix(ip netip.Addr) (netip.Prefix, V, bool) {
	ip = ip.Unmap()
	return t.t.LookupPrefixLPM(netip.PrefixFrom(ip, ip.BitLen()))
}

// Len is the number of prefixes in the table.
func (t *Table[V]) Len() int { return t.t.Size() }

// All yields every prefix and value in sorted order.
func (t *Table[V]) All() iter.Seq2[netip.Prefix, V] { return t.t.AllSorted() }
