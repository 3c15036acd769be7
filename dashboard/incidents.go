package dashboard

import (
	"context"
	"net/http"
	"sort"

	"github.com/certfleet/certfleet"
)

// Bounds of the incidents page: the store is asked for at most this many
// open incidents and this many of all (for the recently resolved ones), newest
// first; a fleet with more open incidents than that has a bigger problem
// than paging, and the page says that it shows the newest.
const (
	maxOpenIncidents     = 500
	maxResolvedIncidents = 50
)

// incidentStore is what a store that keeps alert incidents has
// (certfleet.IncidentStore).
type incidentStore interface {
	Incidents(ctx context.Context, f certfleet.IncidentFilter) ([]certfleet.Incident, error)
}

// incidentsView is the incidents page.
type incidentsView struct {
	Open, Resolved []certfleet.Incident
	// Capped: the store had at least maxOpenIncidents open ones; the
	// newest are shown.
	Capped bool
	// Unsupported: the store keeps no incidents.
	Unsupported bool
}

// visibleIncidents returns the open incidents (newest first) and the
// recently resolved ones the user may see.
func (s *Server) visibleIncidents(ctx context.Context, sc *scope, resolved bool) (*incidentsView, error) {
	v := &incidentsView{}
	is, ok := s.Store.(incidentStore)
	if !ok {
		v.Unsupported = true
		return v, nil
	}
	open, err := is.Incidents(ctx, certfleet.IncidentFilter{OpenOnly: true, Limit: maxOpenIncidents})
	if err != nil {
		return nil, err
	}
	v.Capped = len(open) == maxOpenIncidents
	for _, i := range open {
		if ok, err := sc.may(ctx, i.Certificate); err != nil {
			return nil, err
		} else if ok {
			v.Open = append(v.Open, i)
		}
	}
	// Worst first; the store's order (newest first) within a severity.
	sort.SliceStable(v.Open, func(a, b int) bool { return v.Open[a].Severity.Rank() > v.Open[b].Severity.Rank() })
	if !resolved {
		return v, nil
	}
	recent, err := is.Incidents(ctx, certfleet.IncidentFilter{Limit: maxResolvedIncidents + len(open)})
	if err != nil {
		return nil, err
	}
	for _, i := range recent {
		if i.Open() || len(v.Resolved) == maxResolvedIncidents {
			continue
		}
		if ok, err := sc.may(ctx, i.Certificate); err != nil {
			return nil, err
		} else if ok {
			v.Resolved = append(v.Resolved, i)
		}
	}
	return v, nil
}

// incidents is the incidents page: the open alert incidents of the
// certificates the token may see, worst first, and the recently resolved
// ones.
func (s *Server) incidents(w http.ResponseWriter, r *http.Request, u *user) {
	v, err := s.visibleIncidents(r.Context(), s.scopeOf(u), true)
	if err != nil {
		s.storeError(w, r, u, "list incidents", err)
		return
	}
	s.render(w, r, http.StatusOK, "incidents", page{Title: "Incidents", User: u, Incidents: v})
}
