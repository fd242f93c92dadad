//go:build !linux

package wireguard

import (
	"errors"
	"syscall"
)

// FragmentOuter is a no-op off Linux, where the bind's sockets keep the
// system's default.
func FragmentOuter() {}

// fragmentControl leaves the socket as it is off Linux.
func fragmentControl(string, string, syscall.RawConn) error { return nil }

// outerControl leaves the socket as it is off Linux.
func outerControl(string, string, syscall.RawConn) error { return nil }

// setProbeDF is unsupported off Linux: probes go without DF.
func setProbeDF(syscall.RawConn, bool, bool) error { return errors.ErrUnsupported }

// socketPort finds no socket off Linux (no sockets are captured).
func socketPort(syscall.RawConn) (uint16, bool, bool) { return 0, false, false }
