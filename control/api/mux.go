package api

import "net/http"

// routeMux is the server's ServeMux, recording the patterns registered on
// it in order: the list of routes that the OpenAPI spec is checked against.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

// HandleFunc registers h for pattern, as http.ServeMux.HandleFunc does, and
// records the pattern.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}
