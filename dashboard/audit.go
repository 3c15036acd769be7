package dashboard

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// Audit page sizes. An operator's admin token pages the trail in the store
// (an index per filter, keyset by ID). Any other token sees only the events
// of certificates it may read, so its page is filtered here: the store is
// read auditBatch events at a time, at most auditScan per page, and the
// page links to the next (older) events from where the scan stopped, so a
// token that may see few events of a long trail never makes one request
// read all of it.
const (
	auditPageSize = 50
	auditBatch    = 200
	auditScan     = 2000
)

// auditView is the audit page.
type auditView struct {
	Certificate, Kind, Actor, Since, Until string
	Kinds                                  []string
	Events                                 []certfleet.Event
	// NextURL is the next (older) page; Scanned says how many events
	// were read to fill this page when they are filtered here.
	NextURL  string
	Scanned  int
	Filtered bool // events are filtered by the token's names
	// Problem is a bad filter, said on the page.
	Problem     string
	Unsupported bool
	// Filter is a filter is set (the "clear" link).
	Filter bool
}

// audit is the audit trail, newest first, filtered by certificate, kind,
// actor (exact, or a prefix ending in ':'), since and until (RFC 3339, a
// date, or an age such as 24h), paged by ?before=ID.
func (s *Server) audit(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	q := r.URL.Query()
	v := &auditView{Certificate: strings.TrimSpace(q.Get("certificate")), Kind: strings.TrimSpace(q.Get("kind")),
		Actor: strings.TrimSpace(q.Get("actor")), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until")),
		Kinds: certfleet.EventKinds}
	v.Filter = v.Certificate != "" || v.Kind != "" || v.Actor != "" || v.Since != "" || v.Until != ""
	ar, ok := s.Store.(auditReader)
	if !ok {
		v.Unsupported = true
		s.render(w, r, http.StatusOK, "audit", page{Title: "Audit", User: u, Audit: v})
		return
	}
	f := certfleet.EventFilter{Certificate: v.Certificate, Kind: v.Kind, Actor: v.Actor}
	now := s.Now()
	bad := func(msg string) {
		v.Problem = msg
		s.render(w, r, http.StatusBadRequest, "audit", page{Title: "Audit", User: u, Audit: v})
	}
	for _, tv := range []struct {
		name, val string
		dst       *time.Time
	}{{"since", v.Since, &f.Since}, {"until", v.Until, &f.Until}} {
		if tv.val == "" {
			continue
		}
		t, err := certfleet.ParseEventTime(tv.val, now)
		if err != nil {
			bad(tv.name + ": " + err.Error())
			return
		}
		*tv.dst = t
	}
	if f.Actor != "" && !strings.Contains(f.Actor, ":") {
		bad("actor " + strconv.Quote(f.Actor) + ": give TYPE:NAME (token:tok_…, cli:root, agent:lb1, instance:…) or a prefix such as token:")
		return
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			bad("before " + strconv.Quote(b) + ": follow the \"older\" link rather than editing it")
			return
		}
		f.BeforeID = n
	}
	if _, err := certfleet.CheckEventFilter(f); err != nil {
		bad(err.Error())
		return
	}
	sc := s.scopeOf(u)
	v.Filtered = !sc.everything()
	if v.Filtered && f.Certificate != "" {
		// One certificate: its events are an index range; visible or not
		// as a whole.
		if ok, err := sc.may(ctx, f.Certificate); err != nil {
			s.storeError(w, r, u, "read certificate "+f.Certificate, err)
			return
		} else if ok {
			v.Filtered = false
		} else {
			s.render(w, r, http.StatusOK, "audit", page{Title: "Audit", User: u, Audit: v})
			return
		}
	}
	var last int64
	if !v.Filtered {
		f.Limit = auditPageSize
		evs, err := ar.Events(ctx, f)
		if err != nil {
			s.storeError(w, r, u, "read the audit trail", err)
			return
		}
		v.Events = evs
		if len(evs) == auditPageSize {
			last = evs[len(evs)-1].ID
		}
	} else {
		f.Limit = auditBatch
	scan:
		for v.Scanned < auditScan {
			evs, err := ar.Events(ctx, f)
			if err != nil {
				s.storeError(w, r, u, "read the audit trail", err)
				return
			}
			for _, e := range evs {
				v.Scanned++
				last = e.ID
				ok, err := sc.may(ctx, e.Certificate)
				if err != nil {
					s.storeError(w, r, u, "read certificate "+e.Certificate, err)
					return
				}
				if ok {
					v.Events = append(v.Events, e)
					if len(v.Events) == auditPageSize {
						break scan
					}
				}
			}
			if len(evs) < f.Limit {
				last = 0 // the trail's end
				break
			}
			f.BeforeID = last
		}
	}
	if last > 0 {
		v.NextURL = s.auditURL(v, last)
	}
	s.render(w, r, http.StatusOK, "audit", page{Title: "Audit", User: u, Audit: v})
}

func (s *Server) auditURL(v *auditView, before int64) string {
	q := url.Values{}
	for k, val := range map[string]string{"certificate": v.Certificate, "kind": v.Kind, "actor": v.Actor, "since": v.Since, "until": v.Until} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	return s.Prefix + "/audit?" + q.Encode()
}
