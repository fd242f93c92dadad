package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/token"
)

// ListDevices lists enrolled devices.
func (c *Client) ListDevices(ctx context.Context, showRevoked bool) ([]model.Device, error) {
	var q url.Values
	if showRevoked {
		q = url.Values{"show_revoked": {"true"}}
	}
	var out []model.Device
	return out, c.do(ctx, http.MethodGet, "/v1/devices", q, nil, &out)
}

// RevokeDevice revokes the device named by ref (name or id).
func (c *Client) RevokeDevice(ctx context.Context, ref string) (model.Device, error) {
	var out model.Device
	return out, c.do(ctx, http.MethodPost, "/v1/devices/"+seg(ref)+"/revoke", nil, nil, &out)
}

// RegisterDevice registers a stock WireGuard device by its public key and
// returns it with its configuration.
func (c *Client) RegisterDevice(ctx context.Context, req model.RegisterDevice) (model.RegisteredDevice, error) {
	var out model.RegisteredDevice
	return out, c.do(ctx, http.MethodPost, "/v1/devices", nil, req, &out)
}

// UnrevokeDevice lifts the revocation of the revoked device named by ref
// (name or id): its key may enroll again.
func (c *Client) UnrevokeDevice(ctx context.Context, ref string) (model.Device, error) {
	var out model.Device
	return out, c.do(ctx, http.MethodPost, "/v1/devices/"+seg(ref)+"/unrevoke", nil, nil, &out)
}

// CreateEnrollToken creates a device enrollment token.
func (c *Client) CreateEnrollToken(ctx context.Context, req model.NewEnrollToken) (model.EnrollToken, error) {
	var out model.EnrollToken
	return out, c.do(ctx, http.MethodPost, "/v1/enroll-tokens", nil, req, &out)
}

// ListEnrollTokens lists enrollment tokens (without their secrets).
func (c *Client) ListEnrollTokens(ctx context.Context) ([]model.EnrollToken, error) {
	var out []model.EnrollToken
	return out, c.do(ctx, http.MethodGet, "/v1/enroll-tokens", nil, nil, &out)
}

// DeleteEnrollToken deletes an enrollment token.
func (c *Client) DeleteEnrollToken(ctx context.Context, id uuid.UUID) error {
	return c.do(ctx, http.MethodDelete, "/v1/enroll-tokens/"+id.String(), nil, nil, nil)
}

// SplitTunnel returns the split tunnel setting.
func (c *Client) SplitTunnel(ctx context.Context) (model.SplitTunnel, error) {
	var out model.SplitTunnel
	return out, c.do(ctx, http.MethodGet, "/v1/split-tunnel", nil, nil, &out)
}

// SetSplitMode switches the split tunnel mode, resetting the list to that mode's defaults.
func (c *Client) SetSplitMode(ctx context.Context, mode string) (model.SplitTunnel, error) {
	var out model.SplitTunnel
	return out, c.do(ctx, http.MethodPut, "/v1/split-tunnel/mode", nil, map[string]string{"mode": mode}, &out)
}

// AddSplitEntry adds a prefix to the split tunnel list.
func (c *Client) AddSplitEntry(ctx context.Context, e model.SplitEntry) (model.SplitTunnel, error) {
	var out model.SplitTunnel
	return out, c.do(ctx, http.MethodPost, "/v1/split-tunnel/entries", nil, e, &out)
}

// RemoveSplitEntry removes a prefix from the split tunnel list.
func (c *Client) RemoveSplitEntry(ctx context.Context, addr string) (model.SplitTunnel, error) {
	var out model.SplitTunnel
	return out, c.do(ctx, http.MethodDelete, "/v1/split-tunnel/entries/"+addr, nil, nil, &out)
}

// newPinned returns a client for an agent credential: it trusts only the CA
// the credential pins, and uses the first API address, then the others (the
// other edges of a cluster) when one cannot answer.
func newPinned(apis []string, bearer, pin string) (*Client, error) {
	u, err := parseAPI(apis[0])
	if err != nil {
		return nil, err
	}
	c := newClient(u, bearer, pinnedTLS(pin))
	c.SetAPIs(apis[1:])
	return c, nil
}

// NewEnroller returns the client a device enrolls with, from an enrollment token.
func NewEnroller(raw string) (*Client, error) {
	tok, err := token.DecodeSecret(raw, token.KindEnroll)
	if err != nil {
		return nil, err
	}
	return newPinned(tok.APIList(), raw, tok.CAPin)
}

// NewDevice returns an enrolled device's client, from its credential.
func NewDevice(credential string) (*Client, error) {
	tok, err := token.DecodeSecret(credential, token.KindDevice)
	if err != nil {
		return nil, err
	}
	return newPinned(tok.APIList(), credential, tok.CAPin)
}

// EnrollDevice registers this device's WireGuard key.
func (c *Client) EnrollDevice(ctx context.Context, req model.DeviceEnrollment) (model.EnrolledDevice, error) {
	var out model.EnrolledDevice
	return out, c.do(ctx, http.MethodPost, "/v1/agent/devices", nil, req, &out)
}

// WatchDeviceConfig returns the device's configuration as soon as it differs
// from the version etag names, waiting up to wait; changed is false when
// nothing changed in time. The edges the configuration names become the
// client's alternatives.
func (c *Client) WatchDeviceConfig(ctx context.Context, etag string, wait time.Duration) (cfg model.DeviceConfig, newTag string, changed bool, err error) {
	var out *model.DeviceConfig
	tag, changed, err := c.longPoll(ctx, "/v1/agent/devices/config", etag, wait, &out)
	if err != nil || !changed || out == nil {
		return cfg, etag, false, err
	}
	c.SetAPIs(out.Edge.APIs)
	return *out, tag, true, nil
}

// SelectVNet switches this device into a virtual network ("" for the default).
func (c *Client) SelectVNet(ctx context.Context, vnet string) (model.VNet, error) {
	var out model.VNet
	return out, c.do(ctx, http.MethodPut, "/v1/agent/devices/vnet", nil, model.SelectVNet{VNet: vnet}, &out)
}

// DeviceVNets lists the virtual networks a device can select.
func (c *Client) DeviceVNets(ctx context.Context) ([]model.VNet, error) {
	var out []model.VNet
	return out, c.do(ctx, http.MethodGet, "/v1/agent/devices/vnets", nil, nil, &out)
}

// longPoll GETs path with If-None-Match: etag, waiting up to wait at the edge.
func (c *Client) longPoll(ctx context.Context, path, etag string, wait time.Duration, out any) (string, bool, error) {
	hdr := http.Header{}
	if etag != "" {
		hdr.Set("If-None-Match", etag)
	}
	q := url.Values{"wait": {strconv.Itoa(int(wait / time.Second))}}
	ctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	resp, err := c.doHeader(ctx, http.MethodGet, path, q, hdr, nil, out)
	if err != nil {
		return etag, false, err
	}
	tag := resp.Get("ETag")
	return tag, tag != etag, nil
}
