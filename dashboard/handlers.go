package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// page is what every template gets.
type page struct {
	Title  string
	Prefix string
	User   *user
	CSRF   string
	Now    time.Time
	Flash  string
	Error  string
	List   *listView
	Cert   *certView
	// The other views; Nav names the one shown (the header's links).
	Incidents *incidentsView
	Audit     *auditView
	Endpoints *endpointsView
	Timeline  *timelineView
	// Retry says what became of a retry, per key type (certificate page).
	Retry []retryLine
	// Live is the schedulers' liveness (logged-in pages).
	Live *liveView
	Nav  string
	// Everything: the user is an operator's admin and sees every
	// incident and event, not only those of its certificates.
	Everything bool
	// SessionTTL says how long a login lasts ("8 hours").
	SessionTTL string
}

// listView is one page of the certificate list.
type listView struct {
	Q, Status string
	Statuses  []statusLink
	Rows      []certView
	// PrevURL and NextURL page by cursor (before, after); FirstURL is
	// the list's start, when this page is not it.
	PrevURL, NextURL, FirstURL string
	// Short: the page stopped at listScanPages store pages before it was
	// full (the filter is rare there); NextURL goes on from where it
	// stopped.
	Short bool
}

// statusLink is a status in the filter bar.
type statusLink struct {
	Status string
	URL    string
	Active bool
}

// listScanPages bounds the store pages one list page reads when the
// status filter (rare among the rows a store page examines) or the
// token's name patterns keep only some of what the store gives: the page
// may then come back short with a next link, instead of the request
// reading the whole store to fill it.
const listScanPages = 4

// listURL is the list with filter q and status, from cursor (after or
// before) when one is given.
func (s *Server) listURL(q, status, cursor, name string) string {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if status != "" {
		v.Set("status", status)
	}
	if name != "" {
		v.Set(cursor, name)
	}
	if len(v) == 0 {
		return s.Prefix + "/"
	}
	return s.Prefix + "/?" + v.Encode()
}

// list is the certificate list: filtered by ?q= (a search term, as
// certfleet.CertificateQuery.Search: a name, a domain, whole labels) and
// ?status=, paged by cursor (?after=, ?before=: a certificate's name). It
// reads pages from the store (certfleet.NameIndex.CertificatePage, the
// API's listing): a tenant's token its tenant's only, status=failing
// through the index of failing jobs, every status in the store
// (CertificateQuery.Status); the token's name patterns are checked on each
// certificate read, at most listScanPages store pages a request. Then the attempts of the rows
// that need them (failing, waiting) and the agents' reports of the rows
// shown, for the whole page at once (addListExtras).
func (s *Server) list(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	now := s.Now()
	qv := r.URL.Query()
	lv := &listView{Q: strings.TrimSpace(qv.Get("q")), Status: qv.Get("status")}
	if statusRank(lv.Status) < 0 {
		lv.Status = ""
	}
	for _, st := range Statuses {
		lv.Statuses = append(lv.Statuses, statusLink{Status: st, URL: s.listURL(lv.Q, st, "", ""), Active: st == lv.Status})
	}
	// A page and one more, to know there is a next page. The status is
	// filtered in the store (issue 13), and checked again on each row
	// against what the page shows.
	cq := certfleet.CertificateQuery{Tenant: u.token.Tenant, Search: lv.Q, Failing: lv.Status == StatusFailing, Limit: s.PageSize + 1,
		Status: lv.Status, Now: now, Warning: expiryWindow(s.Thresholds)}
	if a := qv.Get("after"); certfleet.ValidateName(a) == nil {
		cq.After = a
	} else if b := qv.Get("before"); certfleet.ValidateName(b) == nil {
		cq.Before = b
	}
	back := cq.Before != ""
	var rows []certView
	full := false // one more than a page matched: there is more that way
	stop := ""    // where the walk stopped short of the end
	q := cq
walk:
	for range listScanPages {
		page, err := s.Store.CertificatePage(ctx, q)
		if err != nil {
			s.storeError(w, r, u, "list certificates", err)
			return
		}
		got := page.Certificates
		for i := range got {
			c := got[i]
			if back {
				c = got[len(got)-1-i]
			}
			if !u.token.MayRead(c.Spec) {
				continue
			}
			v := listedStatus(now, c, s.Thresholds)
			if lv.Status != "" && v.Status != lv.Status {
				continue
			}
			if len(rows) == s.PageSize {
				full = true
				break walk
			}
			rows = append(rows, v)
		}
		if stop = page.Next; stop == "" || len(rows) == s.PageSize {
			break
		}
		if back {
			q.Before = stop
		} else {
			q.After = stop
		}
	}
	if back {
		slices.Reverse(rows)
	}
	lv.Rows = rows
	lv.Short = !full && stop != "" && len(rows) < s.PageSize
	// The link onwards, in the walk's direction: from the last row shown
	// when a page is full, else from where the walk stopped.
	onward := stop
	if full {
		onward = rows[len(rows)-1].Spec.Name
		if back {
			onward = rows[0].Spec.Name
		}
	}
	// The link backwards: from the first row shown (last, walking back),
	// when the page began at a cursor.
	switch {
	case back && onward != "":
		lv.PrevURL = s.listURL(lv.Q, lv.Status, "before", onward)
	case !back && onward != "":
		lv.NextURL = s.listURL(lv.Q, lv.Status, "after", onward)
	}
	switch {
	case back && len(rows) > 0:
		lv.NextURL = s.listURL(lv.Q, lv.Status, "after", rows[len(rows)-1].Spec.Name)
	case !back && cq.After != "" && len(rows) > 0:
		lv.PrevURL = s.listURL(lv.Q, lv.Status, "before", rows[0].Spec.Name)
	}
	if cq.After != "" || cq.Before != "" {
		lv.FirstURL = s.listURL(lv.Q, lv.Status, "", "")
	}
	if err := s.addListExtras(ctx, now, lv.Rows); err != nil {
		s.storeError(w, r, u, "read the list's attempts and agent reports", err)
		return
	}
	s.render(w, r, http.StatusOK, "list", page{Title: "Certificates", User: u, List: lv})
}

// visibleSpec returns the spec named in the path if the user may see it.
// A spec out of the token's scope is "not found", as in the API: a
// different answer would confirm that it exists.
func (s *Server) visibleSpec(w http.ResponseWriter, r *http.Request, u *user) (certfleet.CertificateSpec, bool) {
	name := r.PathValue("name")
	sp, err := s.Store.Spec(r.Context(), name)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND || (err == nil && (sp.Disabled || !u.token.MayRead(sp))) {
		s.errorPage(w, r, u, http.StatusNotFound, fmt.Sprintf("There is no certificate %q within this token's names.", name))
		return sp, false
	} else if err != nil {
		s.storeError(w, r, u, "read certificate "+name, err)
		return sp, false
	}
	return sp, true
}

// detail is one certificate's page: every key type with its attempts, and
// the fleet.
func (s *Server) detail(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	sp, ok := s.visibleSpec(w, r, u)
	if !ok {
		return
	}
	jobList, err := s.Store.Jobs(ctx, certfleet.JobFilter{Spec: sp.Name})
	if err != nil {
		s.storeError(w, r, u, "read jobs of "+sp.Name, err)
		return
	}
	jobs := make(map[certfleet.JobKey]certfleet.Job, len(jobList))
	for _, j := range jobList {
		jobs[j.JobKey] = j
	}
	now := s.Now()
	v, err := s.certStatus(ctx, now, sp, jobs)
	if err == nil {
		err = s.addAttempts(ctx, now, &v, recentAttempts)
	}
	if ws, ok := s.Store.(waitingNames); ok && err == nil {
		v.Waiting, err = ws.WaitingNames(ctx, certfleet.WaitingFilter{Spec: sp.Name})
	}
	if err != nil {
		s.storeError(w, r, u, "read certificate "+sp.Name, err)
		return
	}
	if s.Fleet != nil {
		reps, err := s.Fleet.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: sp.Name})
		if err != nil {
			s.storeError(w, r, u, "read agent reports of "+sp.Name, err)
			return
		}
		addFleet(&v, reps)
	}
	v.Endpoints = s.certEndpoints(sp.Name)
	p := page{Title: sp.Name, User: u, Cert: &v}
	if r.URL.Query().Has("retried") {
		p.Flash = "Retry requested for " + sp.Name + ": what it did, per key type, is below."
		if at, ok := retriedAt(r.URL.Query().Get("retried"), now); ok {
			p.Retry = s.retryFeedback(ctx, now, at, &v, jobs)
		}
	}
	s.render(w, r, http.StatusOK, "detail", p)
}

// retry makes every job of the certificate due now (JobStore.RetryNow).
// Admin tokens only; the CSRF token was checked by withUser.
func (s *Server) retry(w http.ResponseWriter, r *http.Request, u *user) {
	if !u.Admin() {
		s.Logger.Warn("dashboard retry refused: not an admin token", "token", u.token.ID, "remote", r.RemoteAddr)
		s.errorPage(w, r, u, http.StatusForbidden, "Retrying needs a token with the admin permission; this one does not have it.")
		return
	}
	sp, ok := s.visibleSpec(w, r, u)
	if !ok {
		return
	}
	// Once begun, the retry and its audit events are finished even if the
	// browser goes away: half a retry, or one missing from the trail,
	// would be worse than an answer nobody reads.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), retryTimeout)
	defer cancel()
	at := s.Now()
	// Names waiting for their self-test (issue 14) are re-tested now:
	// otherwise the retried job would only wait for them again.
	if rt, ok := s.Store.(retester); ok {
		if _, err := rt.RetestNow(ctx, sp.Name); err != nil {
			s.storeError(w, r, u, "re-test the waiting names of "+sp.Name, err)
			return
		}
	}
	// A certificate that is valid and not due is left alone unless the
	// operator renews it anyway ("Renew now anyway", force): a retry that
	// made it due only for the scheduler to find nothing to order said
	// nothing (issue 15, finding 6). The page then says why not.
	force := r.PostFormValue("force") == "1"
	rn, canForce := s.Store.(renewer)
	if force && !canForce {
		s.errorPage(w, r, u, http.StatusNotImplemented, "This store cannot force a renewal.")
		return
	}
	waiting := false
	if ws, ok := s.Store.(waitingNames); ok {
		wn, err := ws.WaitingNames(ctx, certfleet.WaitingFilter{Spec: sp.Name})
		if err != nil {
			s.storeError(w, r, u, "read the waiting names of "+sp.Name, err)
			return
		}
		waiting = len(wn) > 0
	}
	jobList, err := s.Store.Jobs(ctx, certfleet.JobFilter{Spec: sp.Name})
	if err != nil {
		s.storeError(w, r, u, "read the jobs of "+sp.Name, err)
		return
	}
	jobs := make(map[certfleet.JobKey]certfleet.Job, len(jobList))
	for _, j := range jobList {
		jobs[j.JobKey] = j
	}
	for _, k := range sp.JobKeys() {
		detail := "retry requested on the dashboard"
		var err error
		switch {
		case force:
			detail = "renewal forced on the dashboard (renew now anyway)"
			err = rn.RenewNow(ctx, k)
		case waiting || s.retryDue(ctx, sp, jobs[k], at) != "":
			err = s.Store.RetryNow(ctx, k)
		default:
			detail = "retry on the dashboard: not due, nothing ordered"
		}
		if err != nil {
			s.storeError(w, r, u, "retry "+k.String(), err)
			return
		}
		if s.Events != nil {
			e := certfleet.Event{At: s.Now(), Kind: certfleet.EventRetry, Actor: "token:" + u.token.ID, Remote: r.RemoteAddr,
				Certificate: sp.Name, KeyType: k.KeyType, Detail: detail}
			if err := s.Events.RecordEvent(ctx, e); err != nil {
				// The retry is done; a lost event must not undo it.
				s.Logger.Error("dashboard: record retry event", certfleet.LogCertificate, sp.Name, certfleet.LogError, err)
			}
		}
	}
	if s.Wake != nil {
		s.Wake()
	}
	s.Logger.Info("dashboard retry", certfleet.LogCertificate, sp.Name, "token", u.token.ID, "remote", r.RemoteAddr)
	// The answer waits a moment for a scheduler to take the work, so that
	// the page can say what became of it rather than only "due now".
	s.awaitPickup(r.Context(), sp, at)
	http.Redirect(w, r, s.Prefix+"/cert/"+url.PathEscape(sp.Name)+"?retried="+strconv.FormatInt(at.UnixMilli(), 10), http.StatusSeeOther)
}

// storeError answers a failed store read: the operator gets what failed
// and what to do; the details go to the log.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, u *user, what string, err error) {
	s.Logger.Error("dashboard: "+what, certfleet.LogError, err)
	status := http.StatusInternalServerError
	if certfleet.ErrorCode(err) == certfleet.EUNAVAILABLE {
		status = http.StatusServiceUnavailable
	}
	s.errorPage(w, r, u, status, "Could not "+what+": the store did not answer as expected. Reload in a moment; if it persists, the daemon's log has the cause.")
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, u *user, status int, msg string) {
	s.render(w, r, status, "error", page{Title: http.StatusText(status), User: u, Error: msg})
}

// render executes a page into a buffer first, so a template error never
// sends half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Prefix, p.Now, p.Nav = s.Prefix, s.Now(), name
	p.SessionTTL = strings.TrimPrefix(relTime(p.Now, p.Now.Add(s.SessionTTL)), "in ")
	if p.User != nil {
		p.CSRF = s.csrfToken(p.User.session)
		p.Everything = operatorAdmin(p.User)
		p.Live = s.liveness(r.Context(), p.Now)
	}
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.Logger.Error("dashboard: render page", "page", name, certfleet.LogError, err)
		http.Error(w, "the dashboard could not render this page; the daemon's log has the cause", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

var funcs = template.FuncMap{
	"abs": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"rel":  relTime,
	"join": strings.Join,
	"short": func(s string) string {
		const n = 240
		if len(s) <= n {
			return s
		}
		return strings.ToValidUTF8(s[:n], "") + "…"
	},
	"pathEscape": url.PathEscape,
	"serial":     certfleet.FormatSerial, // as openssl prints it
	// dict passes several values to a shared template.
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m[k] = kv[i+1]
		}
		return m
	},
	// epBadge is the badge colour of an endpoint check's status.
	"epBadge": func(status string) string {
		switch status {
		case "ok":
			return StatusOK
		case "":
			return StatusPending
		case "expiring":
			return StatusExpiring
		}
		return StatusFailing
	},
	"problem": problemWord, // the problem type's last word
}

// relTime says how far t is from now in one rounded unit: "in 3 days",
// "5 minutes ago".
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	future := d > 0
	if d < 0 {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		if future {
			return "in under a minute"
		}
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// parsePages parses each page together with the layout.
func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/parts.html"))
	pages := make(map[string]*template.Template)
	for _, name := range []string{"login", "list", "detail", "error", "incidents", "audit", "endpoints", "timeline"} {
		pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(assets, "templates/"+name+".html"))
	}
	return pages
}
