package client

import (
	"context"
	"net/http"

	"github.com/switchyard/switchyard/control/model"
)

// AddDNSResolver adds a resolver rule for a domain in a virtual network.
func (c *Client) AddDNSResolver(ctx context.Context, req model.NewDNSResolver) (model.DNSResolver, error) {
	var out model.DNSResolver
	return out, c.do(ctx, http.MethodPost, "/v1/dns/resolvers", nil, req, &out)
}

// ListDNSResolvers lists the resolver rules of vnet (name or id), or of
// every vnet when it is empty.
func (c *Client) ListDNSResolvers(ctx context.Context, vnet string) ([]model.DNSResolver, error) {
	var out []model.DNSResolver
	return out, c.do(ctx, http.MethodGet, "/v1/dns/resolvers", vnetQuery(vnet), nil, &out)
}

// RemoveDNSResolver removes the rule named by ref: its id, or its domain in
// vnet (empty: the default vnet).
func (c *Client) RemoveDNSResolver(ctx context.Context, ref, vnet string) (model.DNSResolver, error) {
	var out model.DNSResolver
	return out, c.do(ctx, http.MethodDelete, "/v1/dns/resolvers/"+seg(ref), vnetQuery(vnet), nil, &out)
}

// DNSZone returns the zone the edge answers overlay names in.
func (c *Client) DNSZone(ctx context.Context) (string, error) {
	var out model.DNSZone
	return out.Zone, c.do(ctx, http.MethodGet, "/v1/dns/zone", nil, nil, &out)
}

// SetDNSZone sets the zone of the overlay names and returns it canonical.
func (c *Client) SetDNSZone(ctx context.Context, zone string) (string, error) {
	var out model.DNSZone
	return out.Zone, c.do(ctx, http.MethodPut, "/v1/dns/zone", nil, model.DNSZone{Zone: zone}, &out)
}
