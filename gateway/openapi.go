package gateway

import (
	_ "embed"
	"net/http"
)

// openAPI is the document of the gateway's HTTP API, served at
// /v1/openapi.yaml. TestOpenAPI keeps it in step with the routes, the
// error codes and the attachment schema.
//
//go:embed openapi.yaml
var openAPI []byte

// serveOpenAPI answers the document the binary was built with, so it
// describes the gateway that serves it.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
