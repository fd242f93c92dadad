package client

import (
	"net/url"
	"testing"

	"github.com/switchyard/switchyard/control/model"
)

// modelTunnelFilter is an empty tunnel filter.
func modelTunnelFilter() model.TunnelFilter { return model.TunnelFilter{} }

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
