package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes the API (OpenAPI 3.1). It is written by hand and
// kept true by TestOpenAPI, which compares it with the routes table and
// with real answers.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request, p principal) {
	writeReply(w, r, reply{status: http.StatusOK, ctype: "application/json", etag: etagOf(openAPIDoc), body: openAPIDoc})
}
