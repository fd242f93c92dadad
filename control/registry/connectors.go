package registry

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

const collConnectors = "connectors"

// maxTextLen bounds the free-text fields agents report (hostname, version).
const maxTextLen = 255

// EnrollConnector registers the WireGuard key of a connector replica of the
// tunnel that id and secret authenticate. Enrolling the same key again (after
// a restart) returns the same connector.
func (r *Registry) EnrollConnector(ctx context.Context, tunnelID uuid.UUID, secret []byte, req model.ConnectorEnrollment) (model.Connector, error) {
	if err := model.ValidateKey(req.PublicKey); err != nil {
		return model.Connector{}, err
	}
	if err := model.ValidateText("hostname", req.Hostname, maxTextLen); err != nil {
		return model.Connector{}, err
	}
	if err := model.ValidateText("version", req.Version, maxTextLen); err != nil {
		return model.Connector{}, err
	}
	if err := validateSiteAddrs(req.SiteAddrs); err != nil {
		return model.Connector{}, err
	}
	if _, err := r.AuthenticateTunnel(ctx, tunnelID, secret); err != nil {
		return model.Connector{}, err
	}
	var c model.Connector
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		t, err := getJSON[tunnelRecord](tx, collTunnels, tunnelID)
		if err := storeErr(err); err != nil {
			return err
		}
		if err != nil || t.Deleted() {
			return model.Errorf(model.KindUnauthorized, "invalid tunnel token")
		}
		all, err := loadAll[model.Connector](tx, collConnectors)
		if err != nil {
			return err
		}
		if err := checkKeyUnused(tx, req.PublicKey, uuid.Nil); err != nil {
			i := slices.IndexFunc(all, func(o model.Connector) bool { return o.PublicKey == req.PublicKey })
			if i < 0 || all[i].TunnelID != tunnelID {
				return err
			}
		}
		now := r.stamp()
		c = model.Connector{ID: uuid.New(), TunnelID: tunnelID, CreatedAt: now}
		for _, o := range all {
			if o.PublicKey == req.PublicKey {
				c = o
			}
		}
		c.PublicKey, c.Hostname, c.Version, c.UpdatedAt = req.PublicKey, req.Hostname, req.Version, now
		if req.SiteAddrs != nil {
			c.SiteAddrs = slices.Clone(req.SiteAddrs)
		}
		return putJSON(tx, collConnectors, c.ID, c)
	})
	return c, err
}

// TunnelKeyEnrolled reports whether key is the WireGuard key of a connector
// replica of tunnel id.
func (r *Registry) TunnelKeyEnrolled(ctx context.Context, id uuid.UUID, key string) (bool, error) {
	found := false
	err := r.st.View(ctx, func(tx store.Tx) error {
		all, err := loadAll[model.Connector](tx, collConnectors)
		found = slices.ContainsFunc(all, func(c model.Connector) bool { return c.TunnelID == id && c.PublicKey == key })
		return err
	})
	return found, storeErr(err)
}

// validateSiteAddrs refuses more than model.MaxSiteAddrs site addresses, or
// one no host could be reached at (unspecified, loopback, link-local,
// multicast). Whether an address lies in the connector's own site is the
// edge's check, against the routes at the time it builds its names.
func validateSiteAddrs(addrs []netip.Addr) error {
	if len(addrs) > model.MaxSiteAddrs {
		return model.Errorf(model.KindInvalid, "site addresses: %d, at most %d", len(addrs), model.MaxSiteAddrs)
	}
	for _, a := range addrs {
		if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.Is4In6() || a.Zone() != "" {
			return model.Errorf(model.KindInvalid, "site address %s: not a host's unicast address", a)
		}
	}
	return nil
}

// ConnectorConfig computes the configuration of an enrolled connector; the API
// adds the edge's address and key.
func (r *Registry) ConnectorConfig(ctx context.Context, connectorID uuid.UUID) (model.ConnectorConfig, error) {
	var cfg model.ConnectorConfig
	err := r.st.View(ctx, func(tx store.Tx) error {
		c, err := getJSON[model.Connector](tx, collConnectors, connectorID)
		if err := storeErr(err); err != nil {
			return err
		}
		if err != nil {
			return model.Errorf(model.KindNotFound, "connector %s is not enrolled", connectorID)
		}
		t, err := getJSON[tunnelRecord](tx, collTunnels, c.TunnelID)
		if err := storeErr(err); err != nil {
			return err
		}
		if err != nil || t.Deleted() {
			return model.Errorf(model.KindUnauthorized, "the tunnel of connector %s was deleted", connectorID)
		}
		routes, err := liveRoutes(tx, nil)
		if err != nil {
			return err
		}
		v, err := tunnelVNet(tx, t.ID, routes)
		if err != nil {
			return err
		}
		cfg = model.ConnectorConfig{
			ConnectorID: c.ID, TunnelID: t.ID, TunnelName: t.Name, VNetID: v.ID, VNetName: v.Name,
			SitePrefixes: []netip.Prefix{}, Routes: []netip.Prefix{}, OverlayRange: r.overlay,
		}
		for _, rt := range routes {
			switch {
			case rt.VNetID != v.ID:
			case rt.TunnelID == t.ID:
				cfg.SitePrefixes = append(cfg.SitePrefixes, rt.Network)
			default:
				cfg.Routes = append(cfg.Routes, rt.Network)
			}
		}
		cfg.Routes = append(cfg.Routes, r.overlay)
		sortPrefixes(cfg.SitePrefixes)
		sortPrefixes(cfg.Routes)
		cfg.Routes = slices.Compact(cfg.Routes)
		return nil
	})
	return cfg, err
}

// tunnelVNet is the virtual network a tunnel serves: that of its routes, or
// the default one while it has none.
func tunnelVNet(tx store.Tx, tunnel uuid.UUID, routes []model.Route) (model.VNet, error) {
	for _, rt := range routes {
		if rt.TunnelID == tunnel {
			return getJSON[model.VNet](tx, collVNets, rt.VNetID)
		}
	}
	return resolveVNet(tx, "")
}

// checkKeyUnused refuses a WireGuard key that a connector or device other than
// self already uses (the edge tells sessions apart by key), and the key of a
// revoked device until an admin lifts the revocation.
func checkKeyUnused(tx store.Tx, key string, self uuid.UUID) error {
	conns, err := loadAll[model.Connector](tx, collConnectors)
	if err != nil {
		return err
	}
	for _, c := range conns {
		if c.PublicKey == key && c.ID != self {
			return model.Errorf(model.KindConflict, "public key %s is already enrolled", key)
		}
	}
	devices, err := loadAll[deviceRecord](tx, collDevices)
	if err != nil {
		return err
	}
	for _, d := range devices {
		if d.Key == key && d.ID != self && !d.Revoked() {
			return model.Errorf(model.KindConflict, "public key %s is already enrolled", key)
		}
		if d.Key == key && d.ID != self && d.KeyBanned() {
			return model.Errorf(model.KindForbidden, "public key %s was revoked with device %q (%s); it stays refused until an admin lifts that: switchyard device unrevoke %s", key, d.Name, d.ID, d.ID)
		}
	}
	return nil
}

func sortPrefixes(s []netip.Prefix) { slices.SortFunc(s, comparePrefix) }

// deleteConnectors removes the connectors of a tunnel being deleted.
func deleteConnectors(tx store.Tx, tunnel uuid.UUID) error {
	conns, err := loadAll[model.Connector](tx, collConnectors)
	if err != nil {
		return err
	}
	for _, c := range conns {
		if c.TunnelID == tunnel {
			if err := tx.Delete(collConnectors, c.ID.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Snapshot is the state the edge's data plane is built from, read at one revision.
type Snapshot struct {
	Rev        int64
	VNets      []model.VNet
	Tunnels    []model.Tunnel
	Routes     []model.Route
	Connectors []model.Connector
	// Devices are the live devices, each with VNetID set to the virtual
	// network it sends into.
	Devices []model.Device
	// Policies are the network policies in evaluation order, and
	// PolicyDefault the action when none matches.
	Policies      []model.Policy
	PolicyDefault string
	// DNSZone is the zone the edge answers overlay names in.
	DNSZone string
}

// Snapshot reads every live virtual network, tunnel, route and connector at one revision.
func (r *Registry) Snapshot(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	err := r.st.View(ctx, func(tx store.Tx) error {
		s.Rev = tx.Rev()
		vnets, err := loadAll[model.VNet](tx, collVNets)
		if err != nil {
			return err
		}
		for _, v := range vnets {
			if !v.Deleted() {
				s.VNets = append(s.VNets, v)
			}
		}
		tunnels, err := loadAll[tunnelRecord](tx, collTunnels)
		if err != nil {
			return err
		}
		for _, t := range tunnels {
			if !t.Deleted() {
				s.Tunnels = append(s.Tunnels, t.Tunnel)
			}
		}
		if s.Routes, err = liveRoutes(tx, nil); err != nil {
			return err
		}
		if s.Connectors, err = loadAll[model.Connector](tx, collConnectors); err != nil {
			return err
		}
		devices, err := loadAll[deviceRecord](tx, collDevices)
		for _, d := range devices {
			if d.Revoked() {
				continue
			}
			v, err := deviceVNet(tx, d.Device)
			if err != nil {
				return err
			}
			d.VNetID = v.ID
			s.Devices = append(s.Devices, d.Device)
		}
		if err != nil {
			return err
		}
		if s.DNSZone, err = dnsZone(tx); err != nil {
			return err
		}
		return snapshotPolicies(tx, &s)
	})
	sortByCreation(s.VNets, func(v model.VNet) (time.Time, string) { return v.CreatedAt, v.Name })
	return s, err
}
