//go:build !linux

package agent

import "errors"

// rootEncrypted is not known off Linux.
func rootEncrypted(root string) (bool, error) {
	return false, errors.ErrUnsupported
}

// firewallActive is not known off Linux.
func firewallActive() (bool, error) { return false, errors.ErrUnsupported }
