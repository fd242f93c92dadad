package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/control/model"
)

// ListPolicies lists the network policies in evaluation order.
func (c *Client) ListPolicies(ctx context.Context) ([]model.Policy, error) {
	var out []model.Policy
	return out, c.do(ctx, http.MethodGet, "/v1/policies", nil, nil, &out)
}

// GetPolicy returns the policy named by ref (name or id).
func (c *Client) GetPolicy(ctx context.Context, ref string) (model.Policy, error) {
	var out model.Policy
	return out, c.do(ctx, http.MethodGet, "/v1/policies/"+seg(ref), nil, nil, &out)
}

// CreatePolicy adds a policy.
func (c *Client) CreatePolicy(ctx context.Context, req model.NewPolicy) (model.Policy, error) {
	var out model.Policy
	return out, c.do(ctx, http.MethodPost, "/v1/policies", nil, req, &out)
}

// UpdatePolicy changes the fields of a policy that p sets.
func (c *Client) UpdatePolicy(ctx context.Context, ref string, p model.PolicyPatch) (model.Policy, error) {
	var out model.Policy
	return out, c.do(ctx, http.MethodPatch, "/v1/policies/"+seg(ref), nil, p, &out)
}

// DeletePolicy deletes a policy.
func (c *Client) DeletePolicy(ctx context.Context, ref string) (model.Policy, error) {
	var out model.Policy
	return out, c.do(ctx, http.MethodDelete, "/v1/policies/"+seg(ref), nil, nil, &out)
}

// MovePolicy moves a policy and returns the policies in their new order.
func (c *Client) MovePolicy(ctx context.Context, ref string, m model.PolicyMove) ([]model.Policy, error) {
	var out []model.Policy
	return out, c.do(ctx, http.MethodPost, "/v1/policies/"+seg(ref)+"/move", nil, m, &out)
}

// PolicyDefault returns the action for flows no policy matches.
func (c *Client) PolicyDefault(ctx context.Context) (model.PolicyDefault, error) {
	var out model.PolicyDefault
	return out, c.do(ctx, http.MethodGet, "/v1/policy-default", nil, nil, &out)
}

// SetPolicyDefault sets the action for flows no policy matches.
func (c *Client) SetPolicyDefault(ctx context.Context, d model.PolicyDefault) (model.PolicyDefault, error) {
	var out model.PolicyDefault
	return out, c.do(ctx, http.MethodPut, "/v1/policy-default", nil, d, &out)
}

// Flows streams the edge's flow log: q holds the filters (addr, port, proto,
// action, policy, user, vnet, tunnel, event), n and follow. It calls emit
// for each record until the stream ends, ctx ends, or emit fails.
func (c *Client) Flows(ctx context.Context, q url.Values, emit func(model.FlowRecord) error) error {
	base, _ := c.apis.current()
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/flows"
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("GET /v1/flows: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the edge API at %s: %w", base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		buf, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeError(resp.StatusCode, buf)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r model.FlowRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("GET /v1/flows: decode record: %w", err)
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("GET /v1/flows: %w", err)
	}
	return nil
}

// TestFlow asks which policy the edge's own engine applies to a flow, and
// what it does.
func (c *Client) TestFlow(ctx context.Context, t model.FlowTest) (model.FlowVerdict, error) {
	var out model.FlowVerdict
	return out, c.do(ctx, http.MethodPost, "/v1/policies/test", nil, t, &out)
}
