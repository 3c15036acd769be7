package dashboard

import (
	"context"
	"time"

	"github.com/certfleet/certfleet"
)

// listAttempts is how many attempts a list row reads: the newest one, or
// five of a failing or expired one (for the newest failure's problem).
func listAttempts(v *certView) int {
	if v.Status == StatusFailing || v.Status == StatusExpired {
		return 5
	}
	return 1
}

// addListExtras adds to the rows of a list page what they show beside
// their jobs: the attempts of the rows that are failing or waiting (their
// problem, hint and deferral) and every row's agents' reports. A store
// that reads them for a page at once (certfleet.ListingExtras) answers in
// a statement per kind whatever the number of rows (issue 13: a page of
// 50 failing certificates made 150 reads, and was the list's slowest);
// another is read row by row.
func (s *Server) addListExtras(ctx context.Context, now time.Time, rows []certView) error {
	x, ok := s.Store.(certfleet.ListingExtras)
	if !ok {
		for i := range rows {
			v := &rows[i]
			if v.readAttempts {
				if err := s.addAttempts(ctx, now, v, listAttempts(v)); err != nil {
					return err
				}
			}
			if err := s.addRowFleet(ctx, v); err != nil {
				return err
			}
		}
		return nil
	}
	var q certfleet.PageExtrasQuery
	for i := range rows {
		v := &rows[i]
		if v.readAttempts {
			for k := range v.Keys {
				key := certfleet.JobKey{Spec: v.Spec.Name, KeyType: v.Keys[k].KeyType}
				q.Attempts = append(q.Attempts, key)
				q.AttemptsPer = max(q.AttemptsPer, listAttempts(v))
				q.Waits = append(q.Waits, key)
				if wantsHint(&v.Keys[k]) {
					q.Reasons = append(q.Reasons, key)
				}
			}
		}
		if s.fleetIsStore {
			q.Reports = append(q.Reports, v.Spec.Name)
		}
	}
	ex, err := x.PageExtras(ctx, q)
	if err != nil {
		return err
	}
	for i := range rows {
		v := &rows[i]
		if v.readAttempts {
			limit := listAttempts(v)
			for k := range v.Keys {
				kv := &v.Keys[k]
				key := certfleet.JobKey{Spec: v.Spec.Name, KeyType: kv.KeyType}
				atts := ex.Attempts[key]
				atts = atts[:min(len(atts), limit)]
				applyAttempts(now, kv, atts, ex.Waits[key])
				if wantsHint(kv) {
					reason, found := ex.Reasons[key]
					applyHint(now, kv, reason, found)
				}
			}
		}
		if s.fleetIsStore {
			addFleet(v, ex.Reports[v.Spec.Name])
		} else if err := s.addRowFleet(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// addRowFleet reads and adds one row's agents' reports, when the
// dashboard has a fleet.
func (s *Server) addRowFleet(ctx context.Context, v *certView) error {
	if s.Fleet == nil {
		return nil
	}
	reps, err := s.Fleet.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: v.Spec.Name})
	if err != nil {
		return err
	}
	addFleet(v, reps)
	return nil
}
