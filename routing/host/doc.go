// Package host configures the connector's host: routes into the TUN and
// the forwarding and reverse-path sysctls, as an idempotent reconcile
// (Manager.Set) through a small seam of netlink operations (Ops).
//
// Production Ops (NewNetlinkOps, Linux only) use a netlink.Handle bound to
// a network namespace, and write sysctls under /proc/sys from a short-lived
// thread that enters that namespace, so a Manager can configure a namespace
// other than the caller's (tests use fresh ones). The fake in package
// hosttest records operations as text for golden tests.
//
// Crash recovery: every route a Manager installs carries the rtnetlink
// protocol RouteProtocol (94, "switchyard"; add "94 switchyard" to
// /etc/iproute2/rt_protos.d/ to see the name in `ip route`), and the
// original value of every sysctl it changes is written to a state file
// before the change. On the next start, Sweep(ops, iface, stateFile)
// removes the marked routes on iface in every table and restores and
// forgets the recorded sysctls.
//
// Allowed imports: the standard library, github.com/vishvananda/netlink,
// github.com/vishvananda/netns, golang.org/x/sys and internal/atomicfile. Only routing/host and
// tun touch netlink; nothing under router/ or control/ may import this
// package.
package host
