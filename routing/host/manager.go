package host

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// ErrClosed is returned by Set after a successful Close.
var ErrClosed = errors.New("host manager closed")

// Config is the desired host state of a connector.
type Config struct {
	// Interface is the TUN that Routes point into and whose rp_filter
	// LooseRPFilter sets. It must exist when Routes or LooseRPFilter are
	// set.
	Interface string
	// Routes are the IPv4 and IPv6 prefixes routed into Interface.
	Routes []netip.Prefix
	// Table is the routing table of Routes; 0 is the main table.
	Table int
	// Forwarding turns on net.ipv4.ip_forward and
	// net.ipv6.conf.all.forwarding.
	Forwarding bool
	// Src4 and Src6 are the preferred source addresses of the IPv4 and IPv6
	// Routes (RTA_PREFSRC): the address the host's own traffic into the
	// tunnel leaves from. Invalid means the kernel picks.
	Src4, Src6 netip.Addr
	// LooseRPFilter sets net.ipv4.conf.<Interface>.rp_filter to 2, so that
	// replies to traffic the edge forwarded in are accepted. The kernel
	// applies max(conf.all, conf.<Interface>), so 2 is also the effective
	// value whatever conf.all holds.
	LooseRPFilter bool
}

// sysctlState is a sysctl the Manager changed: its original value, and the
// value last written ("" when unknown, e.g. adopted from a state file).
type sysctlState struct {
	orig, set string
}

// Manager reconciles the host with a Config. It owns the routes it adds and
// the sysctls it changes; Close undoes both. It trusts its record of what it
// installed: if the interface is deleted and recreated (which drops its
// routes), Close the Manager and start a new one. Methods are safe for
// concurrent use.
type Manager struct {
	ops       Ops
	stateFile string

	mu      sync.Mutex
	routes  map[Route]string // installed route -> interface name
	sysctls map[string]sysctlState
	closed  bool
}

// NewManager returns a Manager that changes the host through ops. The
// original values of the sysctls it changes are kept in stateFile (none
// when empty) so that Sweep can restore them after a crash; originals
// already recorded there are adopted: restored by the first Set that does
// not want them, or by Close.
func NewManager(ops Ops, stateFile string) (*Manager, error) {
	m := &Manager{
		ops:       ops,
		stateFile: stateFile,
		routes:    make(map[Route]string),
		sysctls:   make(map[string]sysctlState),
	}
	saved, err := loadState(stateFile)
	if err != nil {
		return nil, err
	}
	for key, orig := range saved {
		m.sysctls[key] = sysctlState{orig: orig}
	}
	return m, nil
}

// Set makes the host match cfg (nil means the empty Config): it adds the
// missing routes, then deletes the stale ones, then does the same for
// sysctls. On error the Manager keeps the state actually reached, so calling
// Set again converges.
func (m *Manager) Set(cfg *Config) error {
	if cfg == nil {
		cfg = &Config{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return m.set(cfg)
}

// Close removes every route this Manager added, restores every sysctl it
// changed to its original value and removes the state file. After an error
// the Manager stays open so Close can be retried.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	if err := m.set(&Config{}); err != nil {
		return fmt.Errorf("close host manager: %w", err)
	}
	m.closed = true
	return nil
}

// Sweep undoes what a Manager that did not Close (a crash) left behind:
// it removes the routes marked with RouteProtocol through iface, in every
// table, and restores the sysctls recorded in stateFile. A missing iface or
// state file is not an error. Call it before NewManager on start.
func Sweep(ops Ops, iface, stateFile string) error {
	m, err := NewManager(ops, stateFile)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", iface, err)
	}
	var errs []error
	if iface != "" {
		idx, err := ops.LinkIndex(iface)
		switch {
		case errors.Is(err, ErrLinkNotFound):
			// The kernel removed the routes along with the link.
		case err != nil:
			errs = append(errs, fmt.Errorf("sweep %s: %w", iface, err))
		default:
			routes, err := ops.RouteList(idx)
			if err != nil {
				errs = append(errs, fmt.Errorf("sweep %s: list routes: %w", iface, err))
			}
			for _, r := range routes {
				m.routes[r] = iface
			}
		}
	}
	if err := m.Close(); err != nil {
		errs = append(errs, fmt.Errorf("sweep %s: %w", iface, err))
	}
	return errors.Join(errs...)
}

// set reconciles under m.mu.
func (m *Manager) set(cfg *Config) error {
	routes, sysctls, err := m.desired(cfg)
	if err != nil {
		return err
	}
	return errors.Join(m.setRoutes(routes, cfg.Interface), m.setSysctls(sysctls))
}

// desired turns cfg into the routes and sysctl values it asks for.
func (m *Manager) desired(cfg *Config) (map[Route]bool, map[string]string, error) {
	routes := make(map[Route]bool, len(cfg.Routes))
	sysctls := make(map[string]string, 3)
	if cfg.Forwarding {
		sysctls["net/ipv4/ip_forward"] = "1"
		sysctls["net/ipv6/conf/all/forwarding"] = "1"
	}
	if len(cfg.Routes) == 0 && !cfg.LooseRPFilter {
		return routes, sysctls, nil
	}
	iface := cfg.Interface
	if iface == "" || iface == "." || iface == ".." || strings.ContainsAny(iface, "/\x00") {
		return nil, nil, fmt.Errorf("set host config: invalid interface name %q", iface)
	}
	if cfg.Table < 0 {
		return nil, nil, fmt.Errorf("set host config: invalid table %d", cfg.Table)
	}
	if cfg.LooseRPFilter {
		sysctls["net/ipv4/conf/"+iface+"/rp_filter"] = "2"
	}
	if len(cfg.Routes) == 0 {
		return routes, sysctls, nil
	}
	link, err := m.ops.LinkIndex(iface)
	if err != nil {
		return nil, nil, fmt.Errorf("set host config: look up link %s: %w", iface, err)
	}
	for _, p := range cfg.Routes {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("set host config: invalid route prefix %v", p)
		}
		src := cfg.Src6
		if p.Addr().Is4() {
			src = cfg.Src4
		}
		if src.IsValid() && src.Is4() != p.Addr().Is4() {
			return nil, nil, fmt.Errorf("set host config: source %s does not match the family of %s", src, p)
		}
		routes[Route{Dst: p.Masked(), Link: link, Table: cfg.Table, Src: src}] = true
	}
	return routes, sysctls, nil
}

// setRoutes adds the missing routes, then, if all adds succeeded, deletes
// the stale ones. m.routes always reflects what is installed.
func (m *Manager) setRoutes(want map[Route]bool, iface string) error {
	var errs []error
	for _, r := range sortedRoutes(want) {
		if _, ok := m.routes[r]; ok {
			continue
		}
		if err := m.ops.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("add route %s dev %s table %d: %w", r.Dst, iface, r.Table, err))
			continue
		}
		m.routes[r] = iface
	}
	if len(errs) > 0 {
		// Keep the old routes until the new ones are all in place.
		return errors.Join(errs...)
	}
	replaced := make(map[Route]bool, len(want)) // destinations a wanted route now holds
	for r := range want {
		replaced[Route{Dst: r.Dst, Link: r.Link, Table: r.Table}] = true
	}
	for _, r := range sortedRoutes(m.routes) {
		if want[r] {
			continue
		}
		if replaced[Route{Dst: r.Dst, Link: r.Link, Table: r.Table}] {
			delete(m.routes, r) // RouteReplace already swapped it for the wanted one
			continue
		}
		if err := m.ops.RouteDel(r); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s dev %s table %d: %w", r.Dst, m.routes[r], r.Table, err))
			continue
		}
		delete(m.routes, r)
	}
	return errors.Join(errs...)
}

// setSysctls writes the wanted values, recording each original value in
// the state file before changing it, then restores the sysctls no longer
// wanted.
func (m *Manager) setSysctls(want map[string]string) error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(want)) {
		value := want[key]
		st, ok := m.sysctls[key]
		if ok && st.set == value {
			continue
		}
		if !ok {
			cur, err := m.ops.GetSysctl(key)
			if err != nil {
				errs = append(errs, fmt.Errorf("read sysctl %s: %w", key, err))
				continue
			}
			if cur == value {
				continue // nothing to change, nothing to restore
			}
			m.sysctls[key] = sysctlState{orig: cur}
			if err := m.saveState(); err != nil {
				delete(m.sysctls, key)
				errs = append(errs, fmt.Errorf("set sysctl %s: %w", key, err))
				continue
			}
			st = m.sysctls[key]
		}
		if err := m.ops.SetSysctl(key, value); err != nil {
			errs = append(errs, fmt.Errorf("set sysctl %s=%s: %w", key, value, err))
			continue
		}
		st.set = value
		m.sysctls[key] = st
	}
	restored := false
	for _, key := range slices.Sorted(maps.Keys(m.sysctls)) {
		if _, ok := want[key]; ok {
			continue
		}
		orig := m.sysctls[key].orig
		// A per-interface sysctl vanishes with its interface: nothing to restore.
		if err := m.ops.SetSysctl(key, orig); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", key, orig, err))
			continue
		}
		delete(m.sysctls, key)
		restored = true
	}
	if restored {
		if err := m.saveState(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sortedRoutes returns the keys of routes in a stable order: IPv4 first,
// then by address, prefix length and table.
func sortedRoutes[V any](routes map[Route]V) []Route {
	return slices.SortedFunc(maps.Keys(routes), func(a, b Route) int {
		return cmp.Or(
			a.Dst.Addr().Compare(b.Dst.Addr()),
			cmp.Compare(a.Dst.Bits(), b.Dst.Bits()),
			cmp.Compare(a.Table, b.Table),
			cmp.Compare(a.Link, b.Link),
		)
	})
}
