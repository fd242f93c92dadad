package agent

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/conn"
	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/switchyard/switchyard/routing/host"
)

// Seams replace what an agent takes from the operating system, so that a
// test runs connectors and clients in process; a nil field means the
// operating system's own. Production leaves them all nil.
type Seams struct {
	// TUN is the agent's packet device instead of the kernel TUN called
	// TunName (tests pass a tuntest.ChannelTUN's). The agent owns it from
	// the start and closes it when it stops. The host's network stack does
	// not see it: no address is assigned to it, and heartbeats, which a
	// host socket could not send through it, are written into it as
	// packets (as if the host had sent them) and their replies taken out
	// of what the WireGuard device writes to it.
	TUN wgtun.Device
	// Host changes the host's routes (into the interface TunName) and
	// sysctls instead of netlink and /proc/sys in the caller's network
	// namespace (tests pass a hosttest.Fake with a link called TunName). A
	// connector also uses its optional features when it has them: the
	// host's addresses (Addresses, which host.NetlinkOps has; without it
	// the host has none) and SNAT (EnableSNAT and DisableSNAT; without them
	// --snat fails).
	Host host.Ops
	// Bind carries the WireGuard device's UDP instead of wireguard-go's
	// default bind. --protocol auto closes it with each WireGuard device it
	// stops and opens it again with the next, so Open must work after Close.
	Bind conn.Bind
}

// addresser is the optional feature of a Seams.Host that lists the host's
// addresses on every interface but except (host.NetlinkOps has it).
type addresser interface {
	Addresses(except string) ([]netip.Prefix, error)
}

// snatter is the optional SNAT feature of a Seams.Host (the default host
// has it, through host.EnableSNAT).
type snatter interface {
	EnableSNAT(iface string) error
	DisableSNAT(iface string) error
}

// osHost is the default host: netlink and /proc/sys in the caller's network
// namespace, and nftables for SNAT.
type osHost struct{ *host.NetlinkOps }

var (
	_ addresser = osHost{}
	_ snatter   = osHost{}
)

// EnableSNAT implements snatter.
func (osHost) EnableSNAT(iface string) error { return host.EnableSNAT(iface) }

// DisableSNAT implements snatter.
func (osHost) DisableSNAT(iface string) error { return host.DisableSNAT(iface) }

// openHost returns the host of s, opening the default one when s has none,
// and what closes it.
func (s Seams) openHost() (host.Ops, func(), error) {
	if s.Host != nil {
		return s.Host, func() {}, nil
	}
	ops, err := host.NewNetlinkOps(netns.None())
	if err != nil {
		return nil, nil, err
	}
	return osHost{ops}, func() { ops.Close() }, nil
}

// hostAddresses lists the host's addresses on every interface but except;
// a host without the feature has none.
func hostAddresses(h host.Ops, except string) ([]netip.Prefix, error) {
	if a, ok := h.(addresser); ok {
		return a.Addresses(except)
	}
	return nil, nil
}

// setSNAT turns masquerading into the site on or off on iface.
func setSNAT(h host.Ops, iface string, on bool) error {
	s, ok := h.(snatter)
	switch {
	case ok && on:
		return s.EnableSNAT(iface)
	case ok:
		return s.DisableSNAT(iface)
	case on:
		return fmt.Errorf("enable snat on %s: %w", iface, errors.ErrUnsupported)
	}
	return nil
}
