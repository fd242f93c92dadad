package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
	"github.com/switchyard/switchyard/control/token"
)

const adminToken = "test-admin-token"

type secrets struct{}

func (secrets) TunnelSecret(id uuid.UUID) []byte { return append([]byte("0123456789abcdef"), id[:]...) }

func newServer(t *testing.T, tweak ...func(*api.Options)) (*httptest.Server, *client.Client) {
	t.Helper()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: secrets{}})
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{
		AdminTokenHash: sha256.Sum256([]byte(adminToken)),
		Edge:           api.EdgeInfo{API: "https://192.0.2.1:7443", CAPin: "sha256/AAAA", Endpoint: "192.0.2.1:51820", EdgeKey: "k"},
	}
	for _, f := range tweak {
		f(&opts)
	}
	h := api.NewServer(reg, opts)
	t.Cleanup(func() { h.Close() }) // after the HTTP server's
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, adminToken, certPEM(srv))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func certPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func TestClientRoundTrip(t *testing.T) {
	_, c := newServer(t)
	ctx := context.Background()
	if _, err := c.CreateVNet(ctx, model.NewVNet{Name: "syd"}); err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateTunnel(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.DecodeTunnel(created.Token)
	if err != nil || tok.TunnelID != created.Tunnel.ID || tok.Endpoint != "192.0.2.1:51820" {
		t.Fatalf("token of a new tunnel = %+v, %v", tok, err)
	}
	again, err := c.TunnelToken(ctx, "t1")
	if err != nil || again.Token != created.Token {
		t.Fatalf("tunnel token prints a different token: %v", err)
	}
	if _, err := c.CreateTunnel(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	for vnet, tunnel := range map[string]string{"": "t1", "syd": "t2"} {
		if _, err := c.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix("2001:db8::/48"), Tunnel: tunnel, VNet: vnet}); err != nil {
			t.Fatal(err)
		}
	}
	// An egress route is added, with a warning that the overlay stays the edge's.
	egress, err := c.AddRoute(ctx, model.NewRoute{Network: netip.MustParsePrefix("0.0.0.0/0"), Tunnel: "t1"})
	if err != nil || len(egress.Warnings) != 1 || !strings.Contains(egress.Warnings[0], "covers the device overlay range 100.96.0.0/12") {
		t.Fatalf("AddRoute 0.0.0.0/0 = %+v, %v; want added with a warning", egress, err)
	}
	rt, err := c.GetRoute(ctx, "syd", netip.MustParseAddr("2001:db8::7"))
	if err != nil || rt.VNetName != "syd" || rt.TunnelName != "t2" {
		t.Fatalf("GetRoute = %+v, %v", rt, err)
	}
	ov, err := c.Overlaps(ctx)
	if err != nil || len(ov) != 1 || len(ov[0].Routes) != 2 {
		t.Fatalf("Overlaps = %+v, %v", ov, err)
	}
	del, err := c.DeleteRoute(ctx, "syd", "2001:db8::/48")
	if err != nil || del.VNetName != "syd" {
		t.Fatalf("DeleteRoute by CIDR = %+v, %v", del, err)
	}
	if _, err := c.DeleteRoute(ctx, "syd", "2001:db8::/48"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("second DeleteRoute = %v, want not found", err)
	}
}

// TestBadRequests sends malformed input straight over HTTP: each gets a clear
// error with the right status and code, and changes nothing.
func TestBadRequests(t *testing.T) {
	srv, c := newServer(t)
	long := strings.Repeat("x", 70<<10)
	tests := []struct {
		name, method, path, body, token string
		status, code                    int
		msg                             string
	}{
		{"no token", "GET", "/v1/vnets", "", "-", 401, model.CodeUnauthorized, "missing bearer token"},
		{"wrong token", "GET", "/v1/vnets", "", "nope", 401, model.CodeUnauthorized, "invalid token"},
		{"unknown endpoint", "GET", "/v1/nothing", "", "", 404, model.CodeNotFound, "no API endpoint"},
		{"bad json", "POST", "/v1/vnets", `{"name":`, "", 400, model.CodeInvalid, "invalid JSON"},
		{"empty body", "POST", "/v1/vnets", ``, "", 400, model.CodeInvalid, "empty"},
		{"unknown field", "POST", "/v1/vnets", `{"name":"a","colour":"red"}`, "", 400, model.CodeInvalid, "unknown field"},
		{"trailing data", "POST", "/v1/vnets", `{"name":"a"} {}`, "", 400, model.CodeInvalid, "after the object"},
		{"huge body", "POST", "/v1/vnets", `{"name":"` + long + `"}`, "", 400, model.CodeInvalid, "larger than"},
		{"long name", "POST", "/v1/vnets", `{"name":"` + strings.Repeat("a", 100) + `"}`, "", 400, model.CodeInvalid, "limit"},
		{"bad cidr", "POST", "/v1/routes", `{"network":"10.1.2.300/16","tunnel":"t1"}`, "", 400, model.CodeInvalid, "invalid JSON"},
		{"host bits", "POST", "/v1/routes", `{"network":"10.1.2.3/16","tunnel":"t1"}`, "", 400, model.CodeInvalid, "10.1.0.0/16"},
		{"unknown tunnel", "POST", "/v1/routes", `{"network":"10.1.0.0/16","tunnel":"nope"}`, "", 404, model.CodeNotFound, "nope"},
		{"unknown vnet", "POST", "/v1/routes", `{"network":"10.1.0.0/16","tunnel":"t1","vnet":"nope"}`, "", 404, model.CodeNotFound, "nope"},
		{"route in the overlay", "POST", "/v1/routes", `{"network":"100.96.7.0/24","tunnel":"t1"}`, "", 400, model.CodeInvalid, "device overlay range 100.96.0.0/12"},
		{"route to the edge", "POST", "/v1/routes", `{"network":"fd00:5359:6564:6765::1/128","tunnel":"t1"}`, "", 400, model.CodeInvalid, "the edge's own address"},
		{"bad ip", "GET", "/v1/routes/ip/10.1.2", "", "", 400, model.CodeInvalid, "not a valid IP"},
		{"bad uuid filter", "GET", "/v1/vnets?id=xyz", "", "", 400, model.CodeInvalid, "not a UUID"},
		{"bad bool", "DELETE", "/v1/vnets/default?force=maybe", "", "", 400, model.CodeInvalid, "true or false"},
		{"bad subset", "GET", "/v1/routes?network_subset_of=10.0.0.1/8", "", "", 400, model.CodeInvalid, "10.0.0.0/8"},
		{"delete default", "DELETE", "/v1/vnets/default", "", "", 403, model.CodeForbidden, "cannot be deleted"},
		{"delete garbage", "DELETE", "/v1/routes/xyz", "", "", 400, model.CodeInvalid, "neither a route id nor a valid CIDR"},
	}
	ctx := context.Background()
	if _, err := c.CreateTunnel(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	hc := srv.Client()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			switch tc.token {
			case "":
				req.Header.Set("Authorization", "Bearer "+adminToken)
			case "-":
			default:
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			var e api.ErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %s is not JSON: %v", body, err)
			}
			if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error body %s: want code %d and a message with %q", body, tc.code, tc.msg)
			}
		})
	}
	vnets, _ := c.ListVNets(ctx, model.VNetFilter{ShowDeleted: true})
	routes, _ := c.ListRoutes(ctx, model.RouteFilter{ShowDeleted: true})
	if len(vnets) != 1 || len(routes) != 0 {
		t.Fatalf("bad requests changed the store: %d vnets, %d routes", len(vnets), len(routes))
	}
}

func TestHTTPStatusIsTheOneMapping(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{model.Errorf(model.KindInvalid, "x"), 400},
		{model.Errorf(model.KindUnauthorized, "x"), 401},
		{model.Errorf(model.KindForbidden, "x"), 403},
		{model.Errorf(model.KindNotFound, "x"), 404},
		{model.ErrRouteExists, 409},
		{errors.New("disk on fire"), 500},
	}
	for _, tc := range tests {
		if got, body := api.HTTPStatus(tc.err); got != tc.want || body.Message == "" {
			t.Errorf("HTTPStatus(%v) = %d %+v, want %d", tc.err, got, body, tc.want)
		}
	}
	if _, body := api.HTTPStatus(model.ErrRouteExists); body.Code != 1014 {
		t.Errorf("duplicate route code = %d, want 1014", body.Code)
	}
}

// TestWatchStreamsChanges reads the change feed over HTTP while a route is added.
func TestWatchStreamsChanges(t *testing.T) {
	srv, c := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/watch?after=0", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := c.CreateTunnel(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var msg struct {
			Rev  int64 `json:"rev"`
			Keys []struct {
				Coll string `json:"coll"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Fatalf("watch line %q: %v", sc.Text(), err)
		}
		if len(msg.Keys) > 0 && msg.Keys[0].Coll == "tunnels" {
			if strings.Contains(sc.Text(), "secret") {
				t.Fatal("the change feed leaks secret hashes")
			}
			return
		}
	}
	t.Fatalf("the feed ended without the tunnel's creation: %v", sc.Err())
}

// TestBearerSchemeIsCaseInsensitive: RFC 7235 makes the auth-scheme
// case-insensitive, for the admin token and the agents' credentials alike.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	srv, c := newServer(t)
	ctx := context.Background()
	created, err := c.CreateTunnel(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	enroll, err := c.CreateEnrollToken(ctx, model.NewEnrollToken{})
	if err != nil {
		t.Fatal(err)
	}
	key := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	tests := []struct {
		name, method, path, auth, body string
		want                           int
	}{
		{"admin lower", "GET", "/v1/vnets", "bearer " + adminToken, "", 200},
		{"admin upper", "GET", "/v1/vnets", "BEARER " + adminToken, "", 200},
		{"admin two spaces", "GET", "/v1/vnets", "Bearer  " + adminToken, "", 200},
		{"admin other scheme", "GET", "/v1/vnets", "Basic " + adminToken, "", 401},
		{"admin no credential", "GET", "/v1/vnets", "bearer ", "", 401},
		{"admin glued", "GET", "/v1/vnets", "bearer" + adminToken, "", 401},
		{"tunnel token", "POST", "/v1/agent/connectors", "bEaReR " + created.Token, `{"public_key":"` + key(1) + `","hostname":"gw1","version":"1"}`, 201},
		{"enroll token", "POST", "/v1/agent/devices", "bearer " + enroll.Token, `{"name":"laptop","public_key":"` + key(2) + `"}`, 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", tc.auth)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("Authorization %q: status %d, want %d; body %s", tc.auth, resp.StatusCode, tc.want, body)
			}
		})
	}
}
