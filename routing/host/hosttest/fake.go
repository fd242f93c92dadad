// Package hosttest provides a fake host.Ops that keeps routes and sysctls
// in memory and records every change as a line of text, for golden tests of
// host.Manager and of its users.
//
// Allowed imports: the standard library and routing/host.
package hosttest

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/switchyard/switchyard/routing/host"
)

// Fake is an in-memory host.Ops. Like the kernel, it keeps one route per
// destination and table, RouteDel only removes a route whose interface
// matches and that carries host.RouteProtocol, and sysctls must exist to be
// read or written. It is safe for concurrent use.
type Fake struct {
	// Fail, when set, is called with each change's log line before it is
	// applied; a non-nil error fails the change, which is then logged with
	// a " FAILED" suffix and not applied.
	Fail func(op string) error

	mu      sync.Mutex
	links   map[string]int
	routes  map[routeKey]fakeRoute
	sysctls map[string]string
	log     []string
}

var _ host.Ops = (*Fake)(nil)

type routeKey struct {
	dst   string
	table int
}

type fakeRoute struct {
	r      host.Route
	marked bool // carries host.RouteProtocol
}

// New returns a Fake with forwarding off and no links.
func New() *Fake {
	return &Fake{
		links:  make(map[string]int),
		routes: make(map[routeKey]fakeRoute),
		sysctls: map[string]string{
			"net/ipv4/ip_forward":             "0",
			"net/ipv6/conf/all/forwarding":    "0",
			"net/ipv4/conf/all/rp_filter":     "0",
			"net/ipv4/conf/default/rp_filter": "0",
		},
	}
}

// AddLink creates interface name with index, and its rp_filter sysctl
// (strict, 1, as many distributions default to).
func (f *Fake) AddLink(name string, index int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[name] = index
	f.sysctls["net/ipv4/conf/"+name+"/rp_filter"] = "1"
}

// RemoveLink deletes interface name with its routes and sysctls, as the
// kernel does when a TUN is closed.
func (f *Fake) RemoveLink(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, ok := f.links[name]
	if !ok {
		return
	}
	delete(f.links, name)
	delete(f.sysctls, "net/ipv4/conf/"+name+"/rp_filter")
	for k, fr := range f.routes {
		if fr.r.Link == idx {
			delete(f.routes, k)
		}
	}
}

// PresetRoute installs r without logging, marked with host.RouteProtocol or
// not, as a leftover of a previous run or a route of someone else.
func (f *Fake) PresetRoute(r host.Route, marked bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[routeKey{r.Dst.String(), r.Table}] = fakeRoute{r: r, marked: marked}
}

// PresetSysctl sets a sysctl without logging.
func (f *Fake) PresetSysctl(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sysctls[key] = value
}

// TakeLog returns the changes recorded since the last call and forgets them.
func (f *Fake) TakeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	log := f.log
	f.log = nil
	return log
}

// Routes returns the installed routes, formatted as in the log and sorted;
// unmarked routes end in " (foreign)".
func (f *Fake) Routes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, fr := range f.routes {
		s := f.format(fr.r)
		if !fr.marked {
			s += " (foreign)"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Sysctls returns a copy of all sysctl values.
func (f *Fake) Sysctls() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.sysctls)
}

// format renders r with its interface name.
func (f *Fake) format(r host.Route) string {
	dev := "#" + strconv.Itoa(r.Link)
	for name, idx := range f.links {
		if idx == r.Link {
			dev = name
		}
	}
	table := "main"
	if r.Table != 0 {
		table = strconv.Itoa(r.Table)
	}
	s := r.Dst.String() + " dev " + dev + " table " + table
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	return s
}

// change logs op and reports whether Fail lets it through.
func (f *Fake) change(op string) error {
	if f.Fail != nil {
		if err := f.Fail(op); err != nil {
			f.log = append(f.log, op+" FAILED")
			return err
		}
	}
	f.log = append(f.log, op)
	return nil
}

// LinkIndex implements host.RouteOps.
func (f *Fake) LinkIndex(name string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, ok := f.links[name]
	if !ok {
		return 0, fmt.Errorf("link %s: %w", name, host.ErrLinkNotFound)
	}
	return idx, nil
}

// RouteReplace implements host.RouteOps.
func (f *Fake) RouteReplace(r host.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("route replace " + f.format(r)); err != nil {
		return err
	}
	f.routes[routeKey{r.Dst.String(), r.Table}] = fakeRoute{r: r, marked: true}
	return nil
}

// RouteDel implements host.RouteOps.
func (f *Fake) RouteDel(r host.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("route del " + f.format(r)); err != nil {
		return err
	}
	k := routeKey{r.Dst.String(), r.Table}
	if fr, ok := f.routes[k]; ok && fr.marked && fr.r.Link == r.Link {
		delete(f.routes, k)
	}
	return nil
}

// RouteList implements host.RouteOps.
func (f *Fake) RouteList(link int) ([]host.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []host.Route
	for _, fr := range f.routes {
		if fr.marked && fr.r.Link == link {
			out = append(out, fr.r)
		}
	}
	return out, nil
}

// GetSysctl implements host.SysctlOps.
func (f *Fake) GetSysctl(key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.sysctls[key]
	if !ok {
		return "", fmt.Errorf("read sysctl %s: %w", key, fs.ErrNotExist)
	}
	return v, nil
}

// SetSysctl implements host.SysctlOps.
func (f *Fake) SetSysctl(key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sysctls[key]; !ok {
		return fmt.Errorf("write sysctl %s: %w", key, fs.ErrNotExist)
	}
	if err := f.change("sysctl " + key + "=" + value); err != nil {
		return err
	}
	f.sysctls[key] = value
	return nil
}
