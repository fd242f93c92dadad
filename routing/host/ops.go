package host

import (
	"errors"
	"net/netip"
	"strconv"
)

// RouteProtocol is the rtnetlink protocol (RTPROT_*) that marks every
// route a Manager installs, so that Sweep can find leftovers of a crashed
// run without touching anyone else's routes.
const RouteProtocol = 94

// ErrLinkNotFound is returned (wrapped) by Ops.LinkIndex for a missing
// interface.
var ErrLinkNotFound = errors.New("link not found")

// Route is a route into an interface, as the Manager installs it.
type Route struct {
	Dst   netip.Prefix // masked
	Link  int          // interface index
	Table int          // routing table; 0 is main
	Src   netip.Addr   // preferred source for the host's own traffic; invalid means none
}

// String formats r as "<dst> dev <index> table <table>[ src <addr>]".
func (r Route) String() string {
	table := "main"
	if r.Table != 0 {
		table = strconv.Itoa(r.Table)
	}
	s := r.Dst.String() + " dev " + strconv.Itoa(r.Link) + " table " + table
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	return s
}

// RouteOps installs and removes routes marked with RouteProtocol.
type RouteOps interface {
	// LinkIndex returns the index of the interface called name, or an
	// error wrapping ErrLinkNotFound.
	LinkIndex(name string) (int, error)
	// RouteReplace installs r with protocol RouteProtocol, replacing any
	// route to the same destination in the same table.
	RouteReplace(r Route) error
	// RouteDel removes r if it carries RouteProtocol; a missing route is
	// not an error.
	RouteDel(r Route) error
	// RouteList returns the routes through link, in every table, that
	// carry RouteProtocol.
	RouteList(link int) ([]Route, error)
}

// SysctlOps reads and writes sysctls by their /proc/sys path relative to
// /proc/sys, e.g. "net/ipv4/ip_forward". Values carry no trailing newline.
type SysctlOps interface {
	// GetSysctl returns the value of key; a missing key is an error
	// wrapping fs.ErrNotExist.
	GetSysctl(key string) (string, error)
	// SetSysctl writes value to key; a missing key is an error wrapping
	// fs.ErrNotExist.
	SetSysctl(key, value string) error
}

// Ops is the operating-system seam of a Manager.
type Ops interface {
	RouteOps
	SysctlOps
}
