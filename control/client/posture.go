package client

import (
	"context"
	"net/http"

	"github.com/switchyard/switchyard/control/model"
)

// ReportPosture reports the device's posture (a device client) and returns
// it as the edge stored it.
func (c *Client) ReportPosture(ctx context.Context, p model.Posture) (model.Posture, error) {
	var out model.Posture
	return out, c.do(ctx, http.MethodPut, "/v1/agent/devices/posture", nil, p, &out)
}

// ListPostureNetworks lists the posture networks.
func (c *Client) ListPostureNetworks(ctx context.Context) ([]model.PostureNetwork, error) {
	var out []model.PostureNetwork
	return out, c.do(ctx, http.MethodGet, "/v1/posture/networks", nil, nil, &out)
}

// AddPostureNetwork adds a posture network.
func (c *Client) AddPostureNetwork(ctx context.Context, n model.PostureNetwork) (model.PostureNetwork, error) {
	var out model.PostureNetwork
	return out, c.do(ctx, http.MethodPost, "/v1/posture/networks", nil, n, &out)
}

// RemovePostureNetwork removes the posture network called name.
func (c *Client) RemovePostureNetwork(ctx context.Context, name string) (model.PostureNetwork, error) {
	var out model.PostureNetwork
	return out, c.do(ctx, http.MethodDelete, "/v1/posture/networks/"+seg(name), nil, nil, &out)
}
