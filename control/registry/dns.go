package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// The DNS records in the store: resolver rules by id, the zone a setting.
const (
	collDNSResolvers = "dns_resolvers"
	keyDNSZone       = "dns_zone"
)

// maxDNSResolvers bounds the resolver rules of one virtual network.
const maxDNSResolvers = 1000

// AddDNSResolver adds a rule sending the queries for a domain and its
// subdomains, from the clients of a virtual network, to its servers. A
// vnet has at most one rule per domain.
func (r *Registry) AddDNSResolver(ctx context.Context, req model.NewDNSResolver) (model.DNSResolver, error) {
	domain, err := model.ParseDomain(req.Domain)
	if err != nil {
		return model.DNSResolver{}, err
	}
	servers, err := model.ParseDNSServers(req.Servers)
	if err != nil {
		return model.DNSResolver{}, err
	}
	res := model.DNSResolver{ID: uuid.New(), Domain: domain, Servers: servers}
	_, err = r.st.Update(ctx, func(tx store.Tx) error {
		v, err := resolveVNet(tx, req.VNet)
		if err != nil {
			return err
		}
		all, err := loadAll[model.DNSResolver](tx, collDNSResolvers)
		if err != nil {
			return err
		}
		n := 0
		for _, o := range all {
			if o.VNetID != v.ID {
				continue
			}
			if o.Domain == domain {
				return model.Errorf(model.KindConflict, "virtual network %s already has a resolver for %s (id %s); remove it first", v.Name, domain, o.ID)
			}
			n++
		}
		if n >= maxDNSResolvers {
			return model.Errorf(model.KindConflict, "virtual network %s has %d resolvers, the limit", v.Name, n)
		}
		res.VNetID, res.VNetName = v.ID, ""
		if err := putJSON(tx, collDNSResolvers, res.ID, res); err != nil {
			return err
		}
		res.VNetName = v.Name
		return nil
	})
	return res, err
}

// ListDNSResolvers returns the resolver rules of the virtual network vnet
// (name or id), or of every live one when vnet is empty, by vnet name and
// then domain.
func (r *Registry) ListDNSResolvers(ctx context.Context, vnet string) ([]model.DNSResolver, error) {
	var out []model.DNSResolver
	err := r.st.View(ctx, func(tx store.Tx) error {
		want := uuid.Nil
		if vnet != "" {
			v, err := resolveVNet(tx, vnet)
			if err != nil {
				return err
			}
			want = v.ID
		}
		names, err := liveVNetNames(tx)
		if err != nil {
			return err
		}
		all, err := loadAll[model.DNSResolver](tx, collDNSResolvers)
		for _, res := range all {
			name, live := names[res.VNetID]
			if !live || (want != uuid.Nil && res.VNetID != want) {
				continue
			}
			res.VNetName = name
			out = append(out, res)
		}
		return err
	})
	slices.SortFunc(out, func(a, b model.DNSResolver) int {
		return cmp.Or(cmp.Compare(a.VNetName, b.VNetName), cmp.Compare(a.Domain, b.Domain))
	})
	return out, err
}

// RemoveDNSResolver removes the rule named by ref: its id, or its domain in
// the virtual network vnet (empty: the default one).
func (r *Registry) RemoveDNSResolver(ctx context.Context, ref, vnet string) (model.DNSResolver, error) {
	var res model.DNSResolver
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		if id, err := uuid.Parse(ref); err == nil {
			res, err = getJSON[model.DNSResolver](tx, collDNSResolvers, id)
			if errors.Is(err, model.ErrNotFound) {
				return model.Errorf(model.KindNotFound, "DNS resolver %s not found", id)
			}
			if err != nil {
				return err
			}
			return tx.Delete(collDNSResolvers, id.String())
		}
		domain, err := model.ParseDomain(ref)
		if err != nil {
			return err
		}
		v, err := resolveVNet(tx, vnet)
		if err != nil {
			return err
		}
		all, err := loadAll[model.DNSResolver](tx, collDNSResolvers)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(o model.DNSResolver) bool { return o.VNetID == v.ID && o.Domain == domain })
		if i < 0 {
			return model.Errorf(model.KindNotFound, "virtual network %s has no resolver for %s", v.Name, domain)
		}
		res = all[i]
		res.VNetName = v.Name
		return tx.Delete(collDNSResolvers, res.ID.String())
	})
	return res, err
}

// deleteDNSResolvers removes the rules of a virtual network being deleted.
func deleteDNSResolvers(tx store.Tx, vnet uuid.UUID) error {
	all, err := loadAll[model.DNSResolver](tx, collDNSResolvers)
	if err != nil {
		return err
	}
	for _, res := range all {
		if res.VNetID == vnet {
			if err := tx.Delete(collDNSResolvers, res.ID.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// liveVNetNames maps each live virtual network's id to its name.
func liveVNetNames(tx store.Tx) (map[uuid.UUID]string, error) {
	vnets, err := loadAll[model.VNet](tx, collVNets)
	names := map[uuid.UUID]string{}
	for _, v := range vnets {
		if !v.Deleted() {
			names[v.ID] = v.Name
		}
	}
	return names, err
}

// DNSZone returns the zone the edge answers overlay names in
// (model.DefaultDNSZone until an operator sets another).
func (r *Registry) DNSZone(ctx context.Context) (string, error) {
	var z string
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		z, err = dnsZone(tx)
		return err
	})
	return z, err
}

// SetDNSZone sets the zone of the overlay names.
func (r *Registry) SetDNSZone(ctx context.Context, zone string) (string, error) {
	z, err := model.ParseZone(zone)
	if err != nil {
		return "", err
	}
	buf, _ := json.Marshal(model.DNSZone{Zone: z})
	_, err = r.st.Update(ctx, func(tx store.Tx) error { return tx.Put(collSettings, keyDNSZone, buf) })
	return z, err
}

func dnsZone(tx store.Tx) (string, error) {
	buf, err := tx.Get(collSettings, keyDNSZone)
	if errors.Is(err, store.ErrNotFound) {
		return model.DefaultDNSZone, nil
	}
	if err != nil {
		return "", err
	}
	var z model.DNSZone
	if err := json.Unmarshal(buf, &z); err != nil {
		return "", fmt.Errorf("decode DNS zone setting: %w", err)
	}
	return z.Zone, nil
}

// deviceDNS is the DNS part of a device's configuration: the rules of its
// virtual network (by domain), the zone, and server, the edge's address
// that answers it (model.EdgeAddress: every edge answers at it, and a
// device's active edge's peer carries it).
func deviceDNS(rules []model.DNSResolver, vnet uuid.UUID, zone string, server netip.Addr) model.DeviceDNS {
	out := model.DeviceDNS{Zone: zone, Server: server}
	for _, res := range rules {
		if res.VNetID == vnet {
			out.Resolvers = append(out.Resolvers, model.DNSRule{Domain: res.Domain, Servers: slices.Clone(res.Servers)})
		}
	}
	slices.SortFunc(out.Resolvers, func(a, b model.DNSRule) int { return cmp.Compare(a.Domain, b.Domain) })
	return out
}
