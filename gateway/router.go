package gateway

import "net/http"

// router is the gateway's ServeMux, remembering the patterns registered on
// it: a ServeMux cannot list them, and TestOpenAPI compares them with
// openapi.yaml. Every endpoint is registered through one.
type router struct {
	mux      *http.ServeMux
	patterns []string
}

func newRouter() *router { return &router{mux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux.Handle.
func (r *router) Handle(pattern string, h http.Handler) {
	r.mux.Handle(pattern, h)
	r.patterns = append(r.patterns, pattern)
}

// HandleFunc registers f for pattern, as http.ServeMux.HandleFunc.
func (r *router) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	r.Handle(pattern, http.HandlerFunc(f))
}
