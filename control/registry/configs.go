package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// Configs is what agents' configurations are computed from, read at one
// revision: an API server shares one among every configuration long poll
// that wakes for a change, instead of each reading the store. Its
// ConnectorConfig and DeviceConfig answer exactly as the Registry's methods
// of those names answer at that revision, errors included. A Configs is
// immutable and safe for concurrent use.
type Configs struct {
	// Rev is the revision the configurations were read at.
	Rev int64

	overlay    netip.Prefix
	now        func() time.Time // the registry's clock, for sessions' expiry
	connectors map[string]decoded[model.Connector]
	tunnels    map[string]decoded[tunnelRecord]
	devices    map[string]decoded[deviceRecord]
	vnets      map[string]decoded[model.VNet] // by key, deleted ones too
	defVNet    decoded[model.VNet]            // resolveVNet(tx, "")
	routesErr  error                          // what liveRoutes would fail with
	split      decoded[model.SplitTunnel]
	dnsRules   []model.DNSResolver // every resolver rule, unless dnsErr
	dnsZone    string
	dnsErr     error // what reading the rules or the zone would fail with
	postureNet decoded[[]model.PostureNetwork]

	// byVNet holds each virtual network's live routes sorted by network,
	// and tunnelVNet the virtual network of each tunnel's first live route
	// in store order (what tunnelVNet reads).
	byVNet     map[uuid.UUID][]vnetRoute
	tunnelVNet map[uuid.UUID]uuid.UUID
}

// decoded is a record as read: its value, or why it could not be decoded.
type decoded[T any] struct {
	v   T
	err error
}

// vnetRoute is a live route of a virtual network: its network and tunnel.
type vnetRoute struct {
	network netip.Prefix
	tunnel  uuid.UUID
}

// Configs reads, at one revision, everything agents' configurations are
// computed from: connectors, tunnels, devices, virtual networks, routes and
// the split tunnel setting. A record that does not decode fails only the
// configurations that read it, as it does in the Registry's methods; a
// store that cannot answer fails the whole read.
func (r *Registry) Configs(ctx context.Context) (*Configs, error) {
	c := &Configs{overlay: r.overlay, now: r.now, byVNet: map[uuid.UUID][]vnetRoute{}, tunnelVNet: map[uuid.UUID]uuid.UUID{}}
	err := r.st.View(ctx, func(tx store.Tx) error {
		c.Rev = tx.Rev()
		var err error
		if c.connectors, _, err = readAll[model.Connector](tx, collConnectors); err != nil {
			return err
		}
		if c.tunnels, _, err = readAll[tunnelRecord](tx, collTunnels); err != nil {
			return err
		}
		if c.devices, _, err = readAll[deviceRecord](tx, collDevices); err != nil {
			return err
		}
		var vnets []decoded[model.VNet]
		if c.vnets, vnets, err = readAll[model.VNet](tx, collVNets); err != nil {
			return err
		}
		// resolveVNet(tx, ""): the first live default, unless one does not decode.
		c.defVNet = decoded[model.VNet]{err: model.Errorf(model.KindInternal, "no default virtual network")}
		found := false
		for _, v := range vnets {
			if v.err != nil {
				c.defVNet = v
				break
			}
			if !found && v.v.IsDefault && !v.v.Deleted() {
				c.defVNet, found = v, true
			}
		}
		_, routes, err := readAll[model.Route](tx, collRoutes)
		if err != nil {
			return err
		}
		for _, rt := range routes { // liveRoutes(tx, nil)
			if rt.err != nil {
				c.routesErr = rt.err
				break
			}
			if rt.v.Deleted() {
				continue
			}
			c.byVNet[rt.v.VNetID] = append(c.byVNet[rt.v.VNetID], vnetRoute{rt.v.Network, rt.v.TunnelID})
			if _, ok := c.tunnelVNet[rt.v.TunnelID]; !ok {
				c.tunnelVNet[rt.v.TunnelID] = rt.v.VNetID
			}
		}
		if _, err := tx.Get(collSettings, keySplitTunnel); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.split.v, c.split.err = splitTunnel(tx) // now it can fail only to decode
		if _, err := tx.Get(collSettings, keyDNSZone); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, rules, err := readAll[model.DNSResolver](tx, collDNSResolvers)
		if err != nil {
			return err
		}
		for _, res := range rules {
			if res.err != nil {
				c.dnsErr = res.err
				break
			}
			c.dnsRules = append(c.dnsRules, res.v)
		}
		if _, err := tx.Get(collSettings, keyPostureNetworks); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.postureNet.v, c.postureNet.err = postureNetworks(tx) // now it can fail only to decode
		if z, err := dnsZone(tx); err != nil {
			c.dnsErr = cmp.Or(c.dnsErr, err)
		} else {
			c.dnsZone = z
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, rs := range c.byVNet {
		slices.SortFunc(rs, func(a, b vnetRoute) int { return comparePrefix(a.network, b.network) })
	}
	return c, nil
}

// readAll reads every record of coll, by key and in key order, keeping a
// record's decoding error with it, as getJSON and loadAll return it.
func readAll[T any](tx store.Tx, coll string) (map[string]decoded[T], []decoded[T], error) {
	byKey := map[string]decoded[T]{}
	var ordered []decoded[T]
	err := tx.List(coll, func(key string, buf []byte) error {
		var d decoded[T]
		if err := json.Unmarshal(buf, &d.v); err != nil {
			d.err = fmt.Errorf("decode %s/%s: %w", coll, key, err)
		}
		byKey[key] = d
		ordered = append(ordered, d)
		return nil
	})
	return byKey, ordered, err
}

// get is getJSON over a collection read by readAll.
func get[T any](m map[string]decoded[T], id uuid.UUID) (T, error) {
	d, ok := m[id.String()]
	if !ok {
		var zero T
		return zero, model.ErrNotFound
	}
	return d.v, d.err
}

// ConnectorConfig is Registry.ConnectorConfig at c's revision.
func (c *Configs) ConnectorConfig(connectorID uuid.UUID) (model.ConnectorConfig, error) {
	conn, err := get(c.connectors, connectorID)
	if err := storeErr(err); err != nil {
		return model.ConnectorConfig{}, err
	}
	if err != nil {
		return model.ConnectorConfig{}, model.Errorf(model.KindNotFound, "connector %s is not enrolled", connectorID)
	}
	t, err := get(c.tunnels, conn.TunnelID)
	if err := storeErr(err); err != nil {
		return model.ConnectorConfig{}, err
	}
	if err != nil || t.Deleted() {
		return model.ConnectorConfig{}, model.Errorf(model.KindUnauthorized, "the tunnel of connector %s was deleted", connectorID)
	}
	if c.routesErr != nil {
		return model.ConnectorConfig{}, c.routesErr
	}
	v, err := c.defVNet.v, c.defVNet.err
	if id, ok := c.tunnelVNet[t.ID]; ok {
		v, err = get(c.vnets, id)
	}
	if err != nil {
		return model.ConnectorConfig{}, err
	}
	cfg := model.ConnectorConfig{
		ConnectorID: conn.ID, TunnelID: t.ID, TunnelName: t.Name, VNetID: v.ID, VNetName: v.Name,
		SitePrefixes: []netip.Prefix{}, Routes: []netip.Prefix{}, OverlayRange: c.overlay,
	}
	rs := c.byVNet[v.ID]
	cfg.Routes = slices.Grow(cfg.Routes, len(rs)+1)
	for _, rt := range rs { // sorted: both lists come out sorted
		if rt.tunnel == t.ID {
			cfg.SitePrefixes = append(cfg.SitePrefixes, rt.network)
		} else {
			cfg.Routes = append(cfg.Routes, rt.network)
		}
	}
	i, _ := slices.BinarySearchFunc(cfg.Routes, c.overlay, comparePrefix)
	cfg.Routes = slices.Compact(slices.Insert(cfg.Routes, i, c.overlay))
	return cfg, nil
}

// DeviceConfig is Registry.DeviceConfig at c's revision.
func (c *Configs) DeviceConfig(deviceID uuid.UUID) (model.DeviceConfig, error) {
	d, err := get(c.devices, deviceID)
	if err := storeErr(err); err != nil {
		return model.DeviceConfig{}, err
	}
	if err != nil || d.Revoked() {
		return model.DeviceConfig{}, model.Errorf(model.KindUnauthorized, "device %s is revoked or unknown", deviceID)
	}
	if d.SessionEnded(c.now()) {
		return model.DeviceConfig{}, model.ErrSessionExpired(d.ID.String(), *d.SessionExpiresAt)
	}
	v, err := c.defVNet.v, c.defVNet.err
	if d.VNetID != uuid.Nil { // deviceVNet: the selected one while it exists
		if sel, selErr := get(c.vnets, d.VNetID); selErr == nil && !sel.Deleted() {
			v, err = sel, nil
		}
	}
	if err != nil {
		return model.DeviceConfig{}, err
	}
	if c.split.err != nil {
		return model.DeviceConfig{}, c.split.err
	}
	if c.dnsErr != nil {
		return model.DeviceConfig{}, c.dnsErr
	}
	if c.postureNet.err != nil {
		return model.DeviceConfig{}, c.postureNet.err
	}
	st := c.split.v
	st.Entries = slices.Clone(st.Entries)
	return model.DeviceConfig{DeviceID: d.ID, IP: d.IP, OverlayRange: c.overlay, VNetID: v.ID, VNetName: v.Name, SplitTunnel: st,
		DNS: deviceDNS(c.dnsRules, v.ID, c.dnsZone, model.EdgeAddress(c.overlay)), SessionExpiresAt: d.SessionExpiresAt,
		PostureNetworks: slices.Clone(c.postureNet.v)}, nil
}
