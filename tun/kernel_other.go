//go:build !linux

package tun

import (
	"errors"
	"fmt"
	"net/netip"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// CreateKernel is only implemented on Linux.
func CreateKernel(name string, mtu int) (wgtun.Device, error) {
	return nil, fmt.Errorf("create tun %s (mtu %d): %w", name, mtu, errors.ErrUnsupported)
}

// AddAddress is only implemented on Linux.
func AddAddress(name string, p netip.Prefix) error {
	return fmt.Errorf("add address %s to %s: %w", p, name, errors.ErrUnsupported)
}

// SetLinkMTU is unsupported off Linux.
func SetLinkMTU(name string, mtu int) error {
	return fmt.Errorf("set mtu %d of %s: %w", mtu, name, errors.ErrUnsupported)
}
