package httpapi

import (
	"net/http"
	"slices"

	"github.com/certfleet/certfleet"
)

// MetricsHandler guards h, the Prometheus endpoint, with the API's bearer
// tokens. Prometheus endpoints are usually open, but certfleet's metrics
// name every certificate and agent: only a token with read-certs whose
// names cover everything ("*") may read them. (A token scoped to some names
// would see the others' names: there is no per-token filtering.) URL
// credentials are refused, as on the rest of the main listener. For an open
// endpoint, cmd serves the metrics on a separate listener ([metrics]
// listen) instead.
func (s *Server) MetricsHandler(h http.Handler) http.Handler {
	s.init()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			s.fail(w, r, false, problemf(codeMethodNotAllowed, "%s is not allowed here; use GET", r.Method))
			return
		}
		p, prob := s.authenticate(r, false)
		if prob != nil {
			if prob.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="certfleet"`)
			}
			s.fail(w, r, false, prob)
			return
		}
		if !p.token.Has(certfleet.PermReadCerts) {
			s.fail(w, r, false, problemf(codeForbidden, "this token lacks the %s permission", certfleet.PermReadCerts))
			return
		}
		if !slices.Contains(p.token.Names, "*") || p.token.Tenant != "" {
			s.fail(w, r, false, problemf(codeForbidden,
				"the metrics name every certificate: use a token for all names (certfleet token create -names '*' -permissions read-certs)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
