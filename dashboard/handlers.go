package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
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
	Statuses  []string
	Counts    []statusCount
	Rows      []certView
	// Total certificates match; From and To (1-based) are shown.
	Total, From, To int
	Page, Pages     int
	PrevURL         string
	NextURL         string
}

type statusCount struct {
	Status string
	N      int
	URL    string
	Active bool
}

func (s *Server) listURL(q, status string, pageNo int) string {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if status != "" {
		v.Set("status", status)
	}
	if pageNo > 1 {
		v.Set("page", strconv.Itoa(pageNo))
	}
	if len(v) == 0 {
		return s.Prefix + "/"
	}
	return s.Prefix + "/?" + v.Encode()
}

// list is the certificate list: filtered by ?q= (name or identifier
// contains) and ?status=, paged by ?page=. It reads every spec and job the
// token may see (two queries) and the attempts and fleet only of the rows
// shown.
func (s *Server) list(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	now := s.Now()
	qv := r.URL.Query()
	lv := &listView{Q: strings.TrimSpace(qv.Get("q")), Status: qv.Get("status"), Statuses: Statuses, Page: 1}
	if statusRank(lv.Status) < 0 {
		lv.Status = ""
	}
	if n, err := strconv.Atoi(qv.Get("page")); err == nil && n > 1 {
		lv.Page = n
	}
	specs, err := s.Store.Specs(ctx, certfleet.SpecFilter{})
	if err != nil {
		s.storeError(w, r, u, "list certificates", err)
		return
	}
	jobList, err := s.Store.Jobs(ctx, certfleet.JobFilter{})
	if err != nil {
		s.storeError(w, r, u, "list jobs", err)
		return
	}
	jobs := make(map[certfleet.JobKey]certfleet.Job, len(jobList))
	for _, j := range jobList {
		jobs[j.JobKey] = j
	}
	counts := make(map[string]int)
	var rows []certView
	for _, sp := range specs {
		if !u.token.MayRead(sp) || !matches(sp, lv.Q) {
			continue
		}
		v, err := s.certStatus(ctx, now, sp, jobs)
		if err != nil {
			s.storeError(w, r, u, "read certificate "+sp.Name, err)
			return
		}
		counts[v.Status]++
		if lv.Status == "" || v.Status == lv.Status {
			rows = append(rows, v)
		}
	}
	for _, st := range Statuses {
		lv.Counts = append(lv.Counts, statusCount{Status: st, N: counts[st], URL: s.listURL(lv.Q, st, 1), Active: st == lv.Status})
	}
	lv.Total = len(rows)
	lv.Pages = max(1, (lv.Total+s.PageSize-1)/s.PageSize)
	lv.Page = min(lv.Page, lv.Pages)
	lo := (lv.Page - 1) * s.PageSize
	hi := min(lo+s.PageSize, lv.Total)
	lv.Rows = rows[lo:hi]
	lv.From, lv.To = lo+1, hi
	if lv.Page > 1 {
		lv.PrevURL = s.listURL(lv.Q, lv.Status, lv.Page-1)
	}
	if lv.Page < lv.Pages {
		lv.NextURL = s.listURL(lv.Q, lv.Status, lv.Page+1)
	}
	var reports map[string][]certfleet.AgentReport
	if s.Fleet != nil && len(lv.Rows) > 0 {
		all, err := s.Fleet.AgentReports(ctx, certfleet.AgentReportFilter{})
		if err != nil {
			s.storeError(w, r, u, "list agent reports", err)
			return
		}
		reports = make(map[string][]certfleet.AgentReport)
		for _, rep := range all {
			reports[rep.Certificate] = append(reports[rep.Certificate], rep)
		}
	}
	for i := range lv.Rows {
		v := &lv.Rows[i]
		// The newest attempt of every row, for deferrals (one indexed
		// read per key type); a few more of failing ones, for the problem.
		limit := 1
		if v.Status == StatusFailing || v.Status == StatusExpired {
			limit = 5
		}
		if err := s.addAttempts(ctx, now, v, limit); err != nil {
			s.storeError(w, r, u, "read attempts of "+v.Spec.Name, err)
			return
		}
		addFleet(v, reports[v.Spec.Name])
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
		p.Flash = "Retry requested: every key type of " + sp.Name + " was made due now, and the scheduler was woken."
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
	for _, k := range sp.JobKeys() {
		if err := s.Store.RetryNow(ctx, k); err != nil {
			s.storeError(w, r, u, "retry "+k.String(), err)
			return
		}
		if s.Events != nil {
			e := certfleet.Event{At: s.Now(), Kind: certfleet.EventRetry, Actor: "token:" + u.token.ID, Remote: r.RemoteAddr,
				Certificate: sp.Name, KeyType: k.KeyType, Detail: "retry requested on the dashboard"}
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
