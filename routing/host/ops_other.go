//go:build !linux

package host

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netns"
)

// NetlinkOps is only implemented on Linux.
type NetlinkOps struct{ Ops }

// NewNetlinkOps is only implemented on Linux.
func NewNetlinkOps(ns netns.NsHandle) (*NetlinkOps, error) {
	return nil, fmt.Errorf("open netlink ops: %w", errors.ErrUnsupported)
}

// Close does nothing.
func (o *NetlinkOps) Close() error { return nil }

// Addresses is only implemented on Linux.
func (o *NetlinkOps) Addresses(except string) ([]netip.Prefix, error) {
	return nil, fmt.Errorf("list addresses: %w", errors.ErrUnsupported)
}

// Routes is only implemented on Linux.
func (o *NetlinkOps) Routes() ([]HostRoute, error) {
	return nil, fmt.Errorf("list routes: %w", errors.ErrUnsupported)
}

// Addrs is only implemented on Linux.
func (o *NetlinkOps) Addrs() ([]HostAddr, error) {
	return nil, fmt.Errorf("list addresses: %w", errors.ErrUnsupported)
}

// ForwardChains is only implemented on Linux.
func (o *NetlinkOps) ForwardChains() ([]ForwardChain, error) {
	return nil, fmt.Errorf("read the nftables ruleset: %w", errors.ErrUnsupported)
}

// LinkMTU is only implemented on Linux.
func (o *NetlinkOps) LinkMTU(name string) (int, error) {
	return 0, fmt.Errorf("link %s: %w", name, errors.ErrUnsupported)
}
