package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// POST /v1/routes with if_not_exists answers 200 with the route that is
// there when network, vnet and tunnel match, 201 for a new one, and 409
// code 1014 for the network routed to another tunnel.
func TestAddRouteIfNotExistsStatus(t *testing.T) {
	srv, c := newServer(t)
	ctx := context.Background()
	for _, n := range []string{"t1", "t2"} {
		if _, err := c.CreateTunnel(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	post := func(body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/v1/routes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	st, first := post(`{"network":"198.51.100.0/24","tunnel":"t1","if_not_exists":true}`)
	if st != 201 || first["existing"] != nil {
		t.Fatalf("first add: %d %v, want 201 without existing", st, first)
	}
	st, again := post(`{"network":"198.51.100.0/24","tunnel":"t1","vnet":"default","if_not_exists":true}`)
	if st != 200 || again["id"] != first["id"] || again["existing"] != true {
		t.Fatalf("repeated add: %d %v, want 200 with route %v, existing", st, again, first["id"])
	}
	for _, body := range []string{
		`{"network":"198.51.100.0/24","tunnel":"t2","if_not_exists":true}`,
		`{"network":"198.51.100.0/24","tunnel":"t1"}`,
	} {
		if st, e := post(body); st != 409 || e["code"] != float64(model.CodeRouteExists) {
			t.Errorf("add %s: %d %v, want 409 code %d", body, st, e, model.CodeRouteExists)
		}
	}
}
