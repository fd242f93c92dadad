//go:build !linux

package wireguard

import "syscall"

// FragmentOuter is a no-op off Linux, where the bind's sockets keep the
// system's default.
func FragmentOuter() {}

// fragmentControl leaves the socket as it is off Linux.
func fragmentControl(string, string, syscall.RawConn) error { return nil }
