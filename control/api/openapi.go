package api

import (
	_ "embed"
	"net/http"
)

// openAPISpec is the OpenAPI 3 document of every /v1 route; TestOpenAPISpec
// holds it to the routes the server registers.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPISpec returns the OpenAPI 3 document (JSON) of the API.
func OpenAPISpec() []byte { return openAPISpec }

// openAPIRoutes serves the spec, without authentication: it is public
// documentation and holds no secrets.
func (s *Server) openAPIRoutes() {
	s.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPISpec)
	})
}
