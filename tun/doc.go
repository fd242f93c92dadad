// Package tun provides the agents' packet devices: a kernel TUN with
// virtio-net offloads (TSO/GRO through wireguard-go's tun package) and
// MSSClamp, a tun.Device wrapper that clamps the TCP MSS of SYN and SYN-ACK
// segments to what fits the tunnel MTU; and Netstack, a userspace TUN on
// gVisor (wireguard-go's tun/netstack) for the client's userspace mode.
//
// Allowed imports: the standard library, golang.zx2c4.com/wireguard/tun,
// golang.org/x/sys, github.com/vishvananda/netlink and netns, and
// gvisor.dev/gvisor (this is the only package that may import gVisor). It
// never imports control, router, edge or agent.
package tun
