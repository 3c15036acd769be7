package dashboard

import (
	"net/http"
	"sort"

	"github.com/certfleet/certfleet/alert"
)

// endpointsView is the endpoints page: the latest check of every
// configured endpoint of the certificates the token may see.
type endpointsView struct {
	Rows []alert.EndpointObservation
	// Unsupported: no endpoint source (the daemon is not running here).
	Unsupported bool
	// Bad counts the endpoints not serving the current certificate (or
	// whose check failed).
	Bad int
}

// endpointOK reports whether an observation is good news.
func endpointOK(o alert.EndpointObservation) bool { return o.Status == "ok" }

// endpoints lists the endpoint checks, problems first. The checks are
// made by the instance serving the page and kept in its memory (package
// daemon's endpoint watcher): another instance may have checked later.
func (s *Server) endpoints(w http.ResponseWriter, r *http.Request, u *user) {
	v := &endpointsView{}
	if s.Endpoints == nil {
		v.Unsupported = true
	} else {
		sc := s.scopeOf(u)
		for _, o := range s.Endpoints.EndpointObservations() {
			ok, err := sc.mayCert(r.Context(), o.Certificate)
			if err != nil {
				s.storeError(w, r, u, "read certificate "+o.Certificate, err)
				return
			}
			if ok {
				v.Rows = append(v.Rows, o)
				if !endpointOK(o) {
					v.Bad++
				}
			}
		}
		sort.SliceStable(v.Rows, func(a, b int) bool { return !endpointOK(v.Rows[a]) && endpointOK(v.Rows[b]) })
	}
	s.render(w, r, http.StatusOK, "endpoints", page{Title: "Endpoints", User: u, Endpoints: v})
}

// certEndpoints returns the endpoint checks of one certificate.
func (s *Server) certEndpoints(name string) []alert.EndpointObservation {
	if s.Endpoints == nil {
		return nil
	}
	var out []alert.EndpointObservation
	for _, o := range s.Endpoints.EndpointObservations() {
		if o.Certificate == name {
			out = append(out, o)
		}
	}
	return out
}
