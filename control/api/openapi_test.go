package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/api"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/registry"
	"github.com/switchyard/switchyard/control/store/memstore"
)

// spec is the part of the OpenAPI document the tests read.
type spec struct {
	OpenAPI string                              `json:"openapi"`
	Paths   map[string]map[string]specOperation `json:"paths"`
	Comps   struct {
		Schemas   map[string]specSchema `json:"schemas"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema specSchema `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"components"`
}

type specOperation struct {
	Parameters []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	Responses map[string]struct {
		Ref string `json:"$ref"`
	} `json:"responses"`
}

type specSchema struct {
	Ref        string                `json:"$ref"`
	Properties map[string]specSchema `json:"properties"`
}

func loadSpec(t *testing.T) spec {
	t.Helper()
	var s spec
	if err := json.Unmarshal(api.OpenAPISpec(), &s); err != nil {
		t.Fatalf("parse openapi.json: %v", err)
	}
	if !strings.HasPrefix(s.OpenAPI, "3.") {
		t.Fatalf("openapi.json is version %q, want 3.x", s.OpenAPI)
	}
	return s
}

// specRoute turns a mux pattern into the spec's method and path template:
// "DELETE /v1/routes/{ref...}" is delete /v1/routes/{ref}.
func specRoute(pattern string) (method, path string, ok bool) {
	method, path, ok = strings.Cut(pattern, " ")
	return strings.ToLower(method), strings.ReplaceAll(path, "...}", "}"), ok
}

func newAPIServer(t *testing.T) *api.Server {
	t.Helper()
	st := memstore.New(memstore.Options{})
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(context.Background(), st, registry.Options{Secrets: secrets{}})
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(reg, api.Options{AdminTokenHash: sha256.Sum256([]byte(adminToken))})
	t.Cleanup(func() { s.Close() })
	return s
}

// TestOpenAPISpecMatchesRoutes holds openapi.json to the server: every route
// registered on its mux is in the spec with its method and path template,
// and every operation in the spec is served by that route (the mux matches
// it, and it does not answer the catch-all's 404), with the Error response.
func TestOpenAPISpecMatchesRoutes(t *testing.T) {
	doc := loadSpec(t)
	s := newAPIServer(t)
	registered := map[string]string{} // "get /v1/vnets/{ref}" -> mux pattern
	for _, p := range api.Patterns(s) {
		m, path, ok := specRoute(p)
		if !ok {
			if p != "/v1/" && p != "/" {
				t.Errorf("route %q has no method; only the catch-alls / and /v1/ may", p)
			}
			continue
		}
		registered[m+" "+path] = p
		if _, ok := doc.Paths[path][m]; !ok {
			t.Errorf("route %s is not in openapi.json (want %s under paths.%q)", p, m, path)
		}
	}
	if len(registered) < 60 {
		t.Fatalf("only %d routes recorded; the mux lost some", len(registered))
	}
	for path, ops := range doc.Paths {
		for m, op := range ops {
			want, ok := registered[m+" "+path]
			if !ok {
				t.Errorf("openapi.json has %s %s, which the server does not register", m, path)
				continue
			}
			// Fill the template with values that parse, so the request
			// reaches the route's handler.
			url := path
			for _, prm := range op.Parameters {
				if prm.In == "path" {
					v, ok := pathSamples[prm.Name]
					if !ok {
						v = "x"
					}
					url = strings.ReplaceAll(url, "{"+prm.Name+"}", v)
				}
			}
			if strings.Contains(url, "{") {
				t.Errorf("%s %s: path parameters not all declared in its parameters", m, path)
				continue
			}
			r := httptest.NewRequest(strings.ToUpper(m), url, nil)
			if got := api.MatchedPattern(s, r); got != want {
				t.Errorf("%s %s: the mux serves it with %q, want %q", m, url, got, want)
			}
			if d := op.Responses["default"].Ref; d != "#/components/responses/Error" {
				t.Errorf("%s %s: default response is %q, want the Error component", m, path, d)
			}
			if code, msg := serve(t, s, strings.ToUpper(m), url); code == model.CodeNotFound && strings.HasPrefix(msg, "no API endpoint") {
				t.Errorf("%s %s: answered by the catch-all: %s", m, url, msg)
			}
		}
	}
	if code, msg := serve(t, s, "GET", "/v1/no-such-thing"); code != model.CodeNotFound || !strings.HasPrefix(msg, "no API endpoint") {
		t.Errorf("an unknown path answered code %d %q, want the catch-all's 1002", code, msg)
	}
	if code, msg := serve(t, s, "PUT", "/v1/vnets"); code != model.CodeNotFound || !strings.HasPrefix(msg, "no API endpoint") {
		t.Errorf("an unserved method answered code %d %q, want the catch-all's 1002", code, msg)
	}
}

// pathSamples are path parameters that must parse to reach the handler.
var pathSamples = map[string]string{"ip": "192.0.2.1", "addr": "192.0.2.0/24", "email": "ann@example.com"}

// serve sends a bodiless admin request to s and returns the error code and
// message of its answer (zero for a success). Streams are cut short.
func serve(t *testing.T, s *api.Server, method, url string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, srv.URL+url, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 400 {
		return 0, ""
	}
	b, _ := io.ReadAll(resp.Body)
	var e api.ErrorBody
	json.Unmarshal(b, &e)
	return e.Code, e.Message
}

// TestOpenAPISchemas holds the spec's schemas of the main objects to the Go
// types: the same JSON fields, no more, no fewer; and the Error response to
// the body writeError sends.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadSpec(t)
	for name, v := range map[string]any{
		"Error": api.ErrorBody{}, "VNet": model.VNet{}, "NewVNet": model.NewVNet{}, "VNetPatch": model.VNetPatch{},
		"Tunnel": model.Tunnel{}, "Connection": model.Connection{}, "NewTunnel": model.NewTunnel{}, "CreatedTunnel": model.CreatedTunnel{},
		"Failover": model.Failover{}, "PathMTU": model.PathMTU{}, "Route": model.Route{}, "NewRoute": model.NewRoute{},
		"Overlap": model.Overlap{}, "DeleteResult": api.DeleteResult{}, "Device": model.Device{}, "Posture": model.Posture{},
		"RegisterDevice": model.RegisterDevice{}, "Policy": model.Policy{}, "Expr": model.Expr{}, "NewPolicy": model.NewPolicy{},
		"PolicyPatch": model.PolicyPatch{}, "PolicyMove": model.PolicyMove{}, "PolicyDefault": model.PolicyDefault{},
		"Edge": model.Edge{}, "EnrollToken": model.EnrollToken{}, "NewEnrollToken": model.NewEnrollToken{},
		"SplitEntry": model.SplitEntry{}, "SplitTunnel": model.SplitTunnel{}, "DNSResolver": model.DNSResolver{},
		"NewDNSResolver": model.NewDNSResolver{}, "DNSZone": model.DNSZone{}, "EnrollmentRule": model.EnrollmentRule{},
		"NewEnrollmentRule": model.NewEnrollmentRule{}, "User": model.User{}, "PostureNetwork": model.PostureNetwork{},
		"CredentialCheckRequest": model.CredentialCheckRequest{}, "CredentialCheck": model.CredentialCheck{},
	} {
		sc, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		var want, got []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			if tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
				want = append(want, tag)
			}
		}
		for p := range sc.Properties {
			got = append(got, p)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has properties %v; %T has JSON fields %v", name, got, v, want)
		}
	}
	if r := doc.Comps.Responses["Error"].Content["application/json"].Schema.Ref; r != "#/components/schemas/Error" {
		t.Errorf("the Error response's schema is %q, want the Error schema", r)
	}
}

// TestOpenAPIServed fetches the spec without a token.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(newAPIServer(t))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(b) != string(api.OpenAPISpec()) {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes; want 200 and the spec", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
}

// TestOpenAPIRefsResolve checks that every $ref in the spec names a component
// that is there.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPISpec(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				n++
				var at any = doc
				for _, k := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
					m, _ := at.(map[string]any)
					at = m[k]
				}
				if at == nil {
					t.Errorf("$ref %q names nothing", r)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	if n < 65 {
		t.Fatalf("only %d $refs; every operation has one at least", n)
	}
}
