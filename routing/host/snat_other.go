//go:build !linux

package host

import (
	"errors"
	"fmt"
)

// EnableSNAT is only implemented on Linux.
func EnableSNAT(iface string) error {
	return fmt.Errorf("enable snat on %s: %w", iface, errors.ErrUnsupported)
}

// DisableSNAT is only implemented on Linux.
func DisableSNAT(iface string) error { return nil }
