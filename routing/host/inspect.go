package host

import "net/netip"

// HostRoute is a route of the host's routing tables as read by an
// Inspector, whoever installed it.
type HostRoute struct {
	Dst      netip.Prefix // masked; 0.0.0.0/0 or ::/0 for a default route
	Dev      string       // output interface name; empty when none
	Table    int          // 0 is main
	Protocol int          // RTPROT_*; RouteProtocol marks a Manager's
}

// HostAddr is an address of an interface, with its prefix length.
type HostAddr struct {
	Prefix netip.Prefix // the address and its prefix length, unmasked
	Dev    string
}

// Inspector reads the host's routes and addresses, for diagnosis
// (switchyard doctor); it changes nothing.
type Inspector interface {
	// Routes returns the unicast routes of every table.
	Routes() ([]HostRoute, error)
	// Addrs returns the global-scope addresses of every interface.
	Addrs() ([]HostAddr, error)
}

// MTUInspector reads an interface's MTU.
type MTUInspector interface {
	// LinkMTU returns the MTU of the interface called name, or an error
	// wrapping ErrLinkNotFound.
	LinkMTU(name string) (int, error)
}
