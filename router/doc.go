// Package router is the edge's per-packet decision: for a packet that a peer
// (a connector replica or a client device) sent, check the source address
// against what that peer may send from (anti-spoofing), look the destination
// up in the peer's virtual network (longest prefix match; device overlay
// addresses are reachable from every virtual network), decrement the TTL, and
// name the peer to hand the packet to — or build the ICMP error to send back.
// A packet larger than its destination session's MTU (Peer.MTU) gets ICMPv4
// Fragmentation Needed or ICMPv6 Packet Too Big naming that MTU, or, IPv4
// without DF, goes in fragments (Fragment). It never rewrites source or
// destination addresses.
//
// Forwarded packets then pass network policy: router/policy decides a flow's
// first packet, router/flow keeps the decision for the rest of the flow and
// its replies, and blocked TCP gets a RST (other protocols an ICMP
// administratively-prohibited error).
//
// The package is pure: no OS calls, no I/O, no allocation per packet of an
// established flow. It imports routing, its own policy and flow packages
// and the standard library; never control (its records, server or client),
// the CLI, netlink or gVisor. The edge builds a Table and a policy.Set in
// the router's own types from the control plane's records and swaps them in
// atomically whenever the store changes.
package router
