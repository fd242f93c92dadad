// Package agent is the endpoint daemon. In the connector role it enrolls with
// a tunnel token, creates a kernel TUN, carries its packets to the edge over
// a wireguard-go device with the edge as its only peer or over MASQUE
// (transport/masque), switching for --protocol auto, and keeps the host's routes and sysctls reconciled
// with the configuration the edge pushes; everything it changed on the host
// is undone when it stops, and after a crash on its next start.
//
// A running agent answers on a local control socket in its state directory
// (agent/localapi): the CLI's connector status, promote and demote and
// client vnet talk to it there, never through its files. The only file it
// keeps for others is a connector's health file, for keepalived's
// track_file.
//
// The configs' Seams replace the kernel TUN (a tun.Device), the host's
// netlink and sysctls (routing/host.Ops) and wireguard-go's bind (a
// conn.Bind), so that tests run connectors and clients in process.
//
// In the client's userspace mode (UserspaceConfig) the overlay address lives
// in a tun.Netstack instead of a TUN, the host is left alone, and
// agent/proxy's SOCKS5 and HTTP CONNECT servers and the --expose'd ports
// carry the traffic.
//
// A client's DNS is agent/dns's stub (clientdns.go): the vnet's private
// resolvers through the tunnel, every other name to the host's resolvers,
// with systemd-resolved or a rewritten resolv.conf (kernel mode) or the
// proxies' lookups (userspace mode). The addresses it relays for the split
// tunnel's domain entries are routed for their TTL (domainroutes.go).
//
// It imports control/client (never the server), routing, routing/host, tun,
// transport/masque, agent/localapi, agent/proxy and agent/dns; only routing/host and tun touch
// netlink, and Linux-only code lives in _linux.go files.
package agent
