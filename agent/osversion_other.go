//go:build !linux

package agent

// osVersion is unknown off Linux: the device list shows none.
func osVersion() string { return "" }
