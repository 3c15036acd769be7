package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/storetest"
)

// TestExpiringState is issue 15, finding 7: a certificate hours from its
// expiry, whose job has nothing failing, showed "ok" while the alerts had
// a critical incident open. The dashboard now grades it with the alerts'
// thresholds.
func TestExpiringState(t *testing.T) {
	soon, near, fine := storetest.NewSpec("soon"), storetest.NewSpec("near"), storetest.NewSpec("fine")
	e := newEnv(t, soon, near, fine)
	life := 90 * 24 * time.Hour
	valid := func(left time.Duration) func(*certfleet.Issuance) {
		return func(iss *certfleet.Issuance) {
			iss.NotAfter = time.Now().Add(left)
			iss.NotBefore = iss.NotAfter.Add(-life)
		}
	}
	e.issue(soon, valid(3*time.Hour))     // within the critical window (7 days of 90)
	e.issue(near, valid(10*24*time.Hour)) // within the warning window (14 days), not critical
	e.issue(fine, valid(40*24*time.Hour)) // outside both
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	r := e.do("GET", "/dashboard/", c, nil, nil)
	for name, want := range map[string]string{"soon": "expiring", "near": "expiring", "fine": "ok"} {
		row := regexp.MustCompile(`(?s)<tr class="row-([a-z]+)" data-cert="` + name + `">`).FindStringSubmatch(r.body)
		if row == nil || row[1] != want {
			t.Errorf("%s: row status %v, want %s:\n%s", name, row, want, r.body)
		}
	}
	if !strings.Contains(r.body, `href="/dashboard/?status=expiring">expiring</a>`) {
		t.Errorf("the status bar does not link to the expiring ones:\n%s", r.body)
	}
	d := e.do("GET", "/dashboard/cert/soon", c, nil, nil)
	if !strings.Contains(d.body, `id="expiry-ecdsa-p256">critical</span>`) {
		t.Errorf("the page of a certificate 3 hours from expiry does not say critical:\n%s", d.body)
	}
	d = e.do("GET", "/dashboard/cert/near", c, nil, nil)
	if !strings.Contains(d.body, `id="expiry-ecdsa-p256">warning</span>`) {
		t.Errorf("the page of a certificate 10 days from expiry does not say warning:\n%s", d.body)
	}
	if r := e.do("GET", "/dashboard/?status=expiring", c, nil, nil); rows(r.body) != 2 {
		t.Errorf("status=expiring lists %d rows, want 2", rows(r.body))
	}

	// The thresholds are the alerts' configured ones: with a warning
	// window of an hour, nothing here is expiring yet.
	e.serve(&dashboard.Server{Store: e.store, Thresholds: alert.Settings{ExpiryWarning: time.Hour, ExpiryCritical: 30 * time.Minute}})
	c = e.login(secret)
	if r := e.do("GET", "/dashboard/?status=expiring", c, nil, nil); rows(r.body) != 0 {
		t.Errorf("with [alerts] expiry_warning = 1h, %d rows are expiring, want 0", rows(r.body))
	}
}

// TestFailureHint is issue 15, finding 7: a configuration failure showed
// "next renewal in 20 hours" and nothing about what that failure means.
// The class comes from the audit trail's order_failed event.
func TestFailureHint(t *testing.T) {
	cfgErr, caErr, busy := storetest.NewSpec("cfg"), storetest.NewSpec("ca"), storetest.NewSpec("busy")
	e := newEnv(t, cfgErr, caErr, busy)
	for _, tc := range []struct {
		sp              certfleet.CertificateSpec
		msg, pt, reason string
	}{
		{cfgErr, `webroot "/srv/www" of cfg: no such directory`, "", certfleet.EINVALID},
		{caErr, "authorization for ca.example.org invalid: 404", "urn:ietf:params:acme:error:unauthorized", "unauthorized"},
		{busy, "the CA did not answer", "", certfleet.EUNAVAILABLE},
	} {
		e.fail(tc.sp, tc.msg, tc.pt)
		if err := e.store.RecordEvent(t.Context(), certfleet.Event{At: time.Now(), Kind: certfleet.EventOrderFailed, Actor: "instance:test",
			Certificate: tc.sp.Name, KeyType: tc.sp.KeyTypes[0], Reason: tc.reason, Detail: tc.msg}); err != nil {
			t.Fatal(err)
		}
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	for name, want := range map[string]string{
		"cfg":  "Configuration problem",
		"ca":   "The CA could not validate the names",
		"busy": "tries again by itself",
	} {
		d := e.do("GET", "/dashboard/cert/"+name, c, nil, nil)
		hint := regexp.MustCompile(`id="hint-ecdsa-p256" data-reason="[^"]*">([^<]*)<`).FindStringSubmatch(d.body)
		if hint == nil || !strings.Contains(hint[1], want) || !strings.Contains(hint[1], "in 59 minutes") {
			t.Errorf("%s: hint %q, want one saying %q and when the next try is:\n%s", name, hint, want, d.body)
		}
		if !strings.Contains(d.body, "<th>next try</th>") {
			t.Errorf("%s: the failing job's next time is not called the next try", name)
		}
	}
	if l := e.do("GET", "/dashboard/", c, nil, nil); !strings.Contains(l.body, `data-reason="invalid">Configuration problem`) {
		t.Errorf("the list does not show the configuration hint:\n%s", l.body)
	}
}

// scopeFleet is the auth matrix's fleet: an operator's certificate, one of
// tenant a and one of tenant b, each with an open incident and events, and
// an event about no certificate.
func scopeFleet(t *testing.T) *env {
	t.Helper()
	web := storetest.NewSpec("web")
	a1, b1 := storetest.NewSpec("a1"), storetest.NewSpec("b1")
	a1.Tenant, b1.Tenant = "a", "b"
	e := newEnv(t, web, a1, b1)
	now := time.Now()
	for _, sp := range []certfleet.CertificateSpec{web, a1, b1} {
		inc := certfleet.Incident{Key: certfleet.IncidentKey(certfleet.IncidentExpiry, sp.Name, sp.KeyTypes[0], ""), Kind: certfleet.IncidentExpiry,
			Certificate: sp.Name, KeyType: sp.KeyTypes[0], Severity: certfleet.SeverityCritical, Summary: "incident of " + sp.Name, UpdatedAt: now}
		if _, _, err := e.store.ObserveIncident(t.Context(), inc); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := e.store.RecordEvent(t.Context(), certfleet.Event{At: now.Add(time.Duration(i) * time.Second), Kind: certfleet.EventRetry,
				Actor: "cli:root", Certificate: sp.Name, KeyType: sp.KeyTypes[0], Detail: fmt.Sprintf("event %d of %s", i, sp.Name)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.store.RecordEvent(t.Context(), certfleet.Event{At: now, Kind: certfleet.EventTokenCreated, Actor: "cli:root", Detail: "event of none"}); err != nil {
		t.Fatal(err)
	}
	var obs endpointList
	for _, sp := range []certfleet.CertificateSpec{web, a1, b1} {
		obs = append(obs, alert.EndpointObservation{Certificate: sp.Name, Endpoint: "tls " + sp.Name + ".example.org:443", Status: "stale",
			Message: "endpoint of " + sp.Name + " serves an old certificate", CheckedAt: now})
	}
	e.srv.Endpoints = obs // before the first request
	return e
}

// endpointList is a fixed set of endpoint checks (the daemon's watcher
// keeps them in memory; the dashboard only shows them).
type endpointList []alert.EndpointObservation

func (l endpointList) EndpointObservations() []alert.EndpointObservation { return l }

// TestViewsScope is the dashboard's auth matrix for the incidents and
// audit views: a credential sees exactly the incidents and events of the
// certificates it may read (certfleet.Token.MayRead, the API's one rule);
// only an operator's admin token sees the whole trail, as GET /v1/audit.
func TestViewsScope(t *testing.T) {
	e := scopeFleet(t)
	mk := func(desc, tenant string, names []string, perms ...certfleet.Permission) string {
		id, secret, hash := certfleet.NewTokenSecret()
		if err := e.store.CreateToken(t.Context(), certfleet.Token{ID: id, Description: desc, Tenant: tenant, Names: names, Permissions: perms, Hash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	all := []string{"web", "a1", "b1", "none"}
	for _, tc := range []struct {
		name   string
		secret string
		sees   []string // certificates whose items it sees; "none": the event of no certificate
	}{
		{"operator admin", mk("op admin", "", []string{"*"}, certfleet.PermAdmin), all},
		{"operator reader", mk("op reader", "", []string{"*"}, certfleet.PermReadCerts), []string{"web", "a1", "b1"}},
		// An operator's admin token reads the whole trail whatever its
		// names, as GET /v1/audit (it may make itself any token anyway).
		{"operator admin, one name", mk("web admin", "", []string{"web.example.org"}, certfleet.PermAdmin), all},
		{"operator reader, one name", mk("web team", "", []string{"web.example.org"}, certfleet.PermReadCerts), []string{"web"}},
		{"tenant a reader", mk("a reader", "a", []string{"*"}, certfleet.PermReadCerts), []string{"a1"}},
		{"tenant a admin", mk("a admin", "a", []string{"*"}, certfleet.PermAdmin), []string{"a1"}},
		{"tenant b reader", mk("b reader", "b", []string{"*"}, certfleet.PermReadCerts), []string{"b1"}},
		{"tenant a, another's name", mk("a other", "a", []string{"web.example.org"}, certfleet.PermAdmin), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.login(tc.secret)
			inc := e.do("GET", "/dashboard/incidents", c, nil, nil)
			aud := e.do("GET", "/dashboard/audit", c, nil, nil)
			eps := e.do("GET", "/dashboard/endpoints", c, nil, nil)
			if inc.status != http.StatusOK || aud.status != http.StatusOK || eps.status != http.StatusOK {
				t.Fatalf("incidents: status %d, audit: status %d, endpoints: status %d", inc.status, aud.status, eps.status)
			}
			for _, name := range all {
				want := false
				for _, s := range tc.sees {
					want = want || s == name
				}
				if name != "none" {
					if got := strings.Contains(inc.body, "incident of "+name); got != want {
						t.Errorf("incidents page shows %s's incident: %v, want %v", name, got, want)
					}
				}
				if got := strings.Contains(aud.body, "of "+name); got != want {
					t.Errorf("audit page shows events of %s: %v, want %v", name, got, want)
				}
				// Endpoint checks describe the certificate itself: only
				// those it may read, operator admins included.
				if name != "none" {
					wantEP := want && (name == "web" || tc.name != "operator admin, one name")
					if got := strings.Contains(eps.body, "endpoint of "+name); got != wantEP {
						t.Errorf("endpoints page shows %s's endpoint: %v, want %v", name, got, wantEP)
					}
				}
				// A filter on one certificate reveals nothing either.
				if name != "none" {
					f := e.do("GET", "/dashboard/audit?certificate="+name, c, nil, nil)
					if got := strings.Contains(f.body, "event 0 of "+name); got != want {
						t.Errorf("audit?certificate=%s shows its events: %v, want %v", name, got, want)
					}
				}
				// The certificate list, paged and filtered in the store:
				// the same certificates, whatever the filter or cursor
				// (a tenant's token reads its tenant's pages only).
				if name != "none" {
					for _, path := range []string{"/dashboard/", "/dashboard/?q=example.org", "/dashboard/?status=pending",
						"/dashboard/?q=" + name, "/dashboard/?after=a0", "/dashboard/?before=zz"} {
						l := e.do("GET", path, c, nil, nil)
						wantRow := want && (name == "web" || tc.name != "operator admin, one name")
						if got := strings.Contains(l.body, `data-cert="`+name+`"`); got != wantRow {
							t.Errorf("GET %s shows %s: %v, want %v", path, name, got, wantRow)
						}
					}
				}
			}
		})
	}
}

// TestAuditFilters: each filter selects in the store, and paging by the
// "older" link walks the trail without repeats, also for a token whose
// events are filtered here.
func TestAuditFilters(t *testing.T) {
	web, api := storetest.NewSpec("web"), storetest.NewSpec("api")
	e := newEnv(t, web, api)
	base := time.Now().Add(-10 * time.Hour)
	for i := range 130 {
		sp := web
		if i%2 == 1 {
			sp = api
		}
		kind := certfleet.EventRetry
		if i%5 == 0 {
			kind = certfleet.EventOrderFailed
		}
		if err := e.store.RecordEvent(t.Context(), certfleet.Event{At: base.Add(time.Duration(i) * time.Minute), Kind: kind, Actor: "cli:root",
			Certificate: sp.Name, KeyType: sp.KeyTypes[0], Detail: fmt.Sprintf("n%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, admin := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	_, webOnly := e.token("web team", []string{"web.example.org"}, certfleet.PermReadCerts)
	detail := regexp.MustCompile(`<td class="detail">(n\d{3})</td>`)
	older := regexp.MustCompile(`<a href="([^"]+)" rel="next"`)
	walk := func(t *testing.T, c *http.Cookie, path string) []string {
		t.Helper()
		var got []string
		for range 20 {
			r := e.do("GET", path, c, nil, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: status %d:\n%s", path, r.status, r.body)
			}
			for _, m := range detail.FindAllStringSubmatch(r.body, -1) {
				got = append(got, m[1])
			}
			m := older.FindStringSubmatch(r.body)
			if m == nil {
				return got
			}
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		t.Fatalf("more than 20 pages")
		return nil
	}
	want := func(keep func(i int) bool) []string {
		var out []string
		for i := 129; i >= 0; i-- {
			if keep(i) {
				out = append(out, fmt.Sprintf("n%03d", i))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, secret, query string
		keep                func(int) bool
	}{
		{"everything", admin, "", func(int) bool { return true }},
		{"certificate", admin, "certificate=api", func(i int) bool { return i%2 == 1 }},
		{"kind", admin, "kind=order_failed", func(i int) bool { return i%5 == 0 }},
		{"since", admin, "since=" + url.QueryEscape(base.Add(100*time.Minute).UTC().Format(time.RFC3339)), func(i int) bool { return i >= 100 }},
		{"until", admin, "until=" + url.QueryEscape(base.Add(10*time.Minute).UTC().Format(time.RFC3339)), func(i int) bool { return i < 10 }},
		{"scoped token", webOnly, "", func(i int) bool { return i%2 == 0 }},
		{"scoped token, kind", webOnly, "kind=order_failed", func(i int) bool { return i%10 == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := walk(t, e.login(tc.secret), "/dashboard/audit?"+tc.query)
			if w := want(tc.keep); strings.Join(got, ",") != strings.Join(w, ",") {
				t.Errorf("got %d events %v\nwant %d %v", len(got), got, len(w), w)
			}
		})
	}
	c := e.login(admin)
	for _, q := range []string{"since=yesterday", "actor=root", "kind=Bad%20Kind", "before=x"} {
		if r := e.do("GET", "/dashboard/audit?"+q, c, nil, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, `id="audit-problem"`) {
			t.Errorf("audit?%s: status %d, want 400 with the problem on the page", q, r.status)
		}
	}
}

// TestLiveness (issue 15, finding 7): every page says when a scheduler
// last looked for due work, from the store, and warns when none has.
func TestLiveness(t *testing.T) {
	e := newEnv(t, storetest.NewSpec("web"))
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	live := regexp.MustCompile(`<span class="live ([a-z]+)" id="liveness"[^>]*>([^<]*)</span>`)
	check := func(t *testing.T, class, text, warning string) {
		t.Helper()
		for _, path := range []string{"/dashboard/", "/dashboard/cert/web", "/dashboard/incidents", "/dashboard/audit"} {
			r := e.do("GET", path, c, nil, nil)
			m := live.FindStringSubmatch(r.body)
			if m == nil || m[1] != class || !strings.Contains(m[2], text) {
				t.Errorf("GET %s: liveness %q, want class %s saying %q", path, m, class, text)
			}
			w := regexp.MustCompile(`id="liveness-warning" role="alert">([^<]*)<`).FindStringSubmatch(r.body)
			if (warning == "") != (w == nil) || (w != nil && !strings.Contains(w[1], warning)) {
				t.Errorf("GET %s: warning %q, want %q", path, w, warning)
			}
		}
	}
	t.Run("never", func(t *testing.T) {
		check(t, "stale", "no scheduler running", "No scheduler has looked for due work in the last week")
	})
	now := time.Now()
	if err := e.store.PutHeartbeat(t.Context(), certfleet.Heartbeat{Instance: "a", StartedAt: now.Add(-time.Hour), RoundAt: now.Add(-5 * time.Second), Interval: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Run("fresh", func(t *testing.T) { check(t, "ok", "scheduler ran just now", "") })
	if r := e.do("GET", "/dashboard/", c, nil, nil); !strings.Contains(r.body, `<tr class="instance live"><td><code>a</code>`) {
		t.Errorf("the list does not list scheduler a as running:\n%s", r.body)
	}
	e.offset.Store(int64(5 * time.Minute)) // 2 × 30 s + 1 min have passed
	defer e.offset.Store(0)
	t.Run("stale", func(t *testing.T) {
		check(t, "stale", "scheduler silent since 5 minutes ago", "No scheduler has looked for due work since")
	})
}

// TestRetryFeedback (issue 15, finding 7): after a retry the certificate
// page says per key type what became of it, not only "due now". The
// scheduler's part is played on the real store: taking the job, failing
// or deferring it, or finding nothing to order.
func TestRetryFeedback(t *testing.T) {
	specs := map[string]certfleet.CertificateSpec{}
	var list []certfleet.CertificateSpec
	for _, n := range []string{"idle", "taken", "failed", "deferred", "notdue", "selftest"} {
		specs[n] = storetest.NewSpec(n)
		list = append(list, specs[n])
	}
	e := newEnv(t, list...)
	for _, sp := range list {
		e.issue(sp, nil)
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)
	csrf := e.csrf(c)
	key := func(n string) certfleet.JobKey { return certfleet.JobKey{Spec: n, KeyType: certfleet.ECDSAP256} }
	// Every certificate here is valid and not due: a plain retry orders
	// nothing (the "not due" case), so the scheduler's other outcomes
	// follow "Renew now anyway" (force), which makes the job due.
	post := func(t *testing.T, n string, force bool) string {
		t.Helper()
		form := url.Values{"csrf": {csrf}}
		if force {
			form.Set("force", "1")
		}
		r := e.do("POST", "/dashboard/cert/"+n+"/retry", c, form, nil)
		loc := r.header.Get("Location")
		if r.status != http.StatusSeeOther || !regexp.MustCompile(`^/dashboard/cert/`+n+`\?retried=\d{13}$`).MatchString(loc) {
			t.Fatalf("retry %s: status %d, location %q", n, r.status, loc)
		}
		return loc
	}
	retry := func(t *testing.T, n string) string { t.Helper(); return post(t, n, true) }
	feedback := func(t *testing.T, loc, state, text string) {
		t.Helper()
		r := e.do("GET", loc, c, nil, nil)
		m := regexp.MustCompile(`<li class="rf rf-([a-z-]+)" data-key="ecdsa-p256"><b>ecdsa-p256</b>: ([^<]*)</li>`).FindStringSubmatch(r.body)
		if m == nil || m[1] != state || !strings.Contains(m[2], text) {
			t.Errorf("feedback %q, want state %s saying %q:\n%s", m, state, text, r.body)
		}
	}
	now := func() time.Time { return time.Now() }
	att := func(outcome, msg string) certfleet.Attempt {
		return certfleet.Attempt{Instance: "sched", StartedAt: now(), FinishedAt: now(), Outcome: outcome, Error: msg}
	}

	t.Run("no scheduler", func(t *testing.T) {
		start := time.Now()
		loc := retry(t, "idle")
		if time.Since(start) > 2*time.Second {
			t.Errorf("the retry waited %v for a scheduler that is not running", time.Since(start))
		}
		feedback(t, loc, "waiting", "no scheduler is running")
	})

	// From here a scheduler is alive.
	if err := e.store.PutHeartbeat(t.Context(), certfleet.Heartbeat{Instance: "sched", StartedAt: now(), RoundAt: now(), Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	t.Run("taken", func(t *testing.T) {
		go func() {
			time.Sleep(300 * time.Millisecond)
			if _, err := e.store.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "sched", Now: now().Add(time.Second), Lease: time.Minute, Limit: 10}); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		loc := retry(t, "taken")
		if d := time.Since(start); d < 250*time.Millisecond || d > 2500*time.Millisecond {
			t.Errorf("the retry answered after %v, want once the scheduler took the job (~300ms)", d)
		}
		feedback(t, loc, "ordering", "Ordering now (scheduler sched holds it)")
	})
	t.Run("failed", func(t *testing.T) {
		loc := retry(t, "failed")
		e.claim(key("failed"))
		if err := e.store.FailJob(t.Context(), key("failed"), "test", att(certfleet.OutcomeFailed, "connection refused by failed.example.org"), now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		feedback(t, loc, "failed", "Ordered, and the order failed: connection refused by failed.example.org")
	})
	t.Run("deferred", func(t *testing.T) {
		loc := retry(t, "deferred")
		e.claim(key("deferred"))
		if err := e.store.DeferJob(t.Context(), key("deferred"), "test", att(certfleet.OutcomeDeferred, "50 of 50 certificates per registered domain used"), now().Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		feedback(t, loc, "deferred", "Not ordered now: 50 of 50 certificates per registered domain used. It will be ordered in 2 hours")
	})
	t.Run("waiting names", func(t *testing.T) {
		id := certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "selftest.example.org"}
		if err := e.store.SetWaiting(t.Context(), "selftest", []certfleet.WaitingName{{Spec: "selftest", Identifier: id, Challenge: certfleet.ChallengeHTTP01,
			Code: certfleet.WaitDNS, Reason: "no address for selftest.example.org", Since: now(), CheckedAt: now(), NextAt: now().Add(time.Hour), Tests: 3}}, nil); err != nil {
			t.Fatal(err)
		}
		loc := post(t, "selftest", false) // waiting names are re-tested without force
		// The scheduler's self-test finds the name still failing and the
		// job sleeps until the next re-test.
		e.claim(key("selftest"))
		if err := e.store.Reschedule(t.Context(), key("selftest"), "test", certfleet.ScheduleUpdate{NextAt: now().Add(30 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		feedback(t, loc, "self-test", "Not ordered: 1 name(s) fail the self-test certfleet runs before ordering (selftest.example.org: no address for selftest.example.org)")
		ws, err := e.store.WaitingNames(t.Context(), certfleet.WaitingFilter{Spec: "selftest"})
		if err != nil || len(ws) != 1 || ws[0].NextAt.After(time.Now()) {
			t.Errorf("after the retry the waiting name is next tested at %+v (%v), want now", ws, err)
		}
	})
	// Issue 15, finding 6: a retry of a valid certificate that is not
	// due made it due, the scheduler found nothing to order and moved the
	// next check hours away, and nobody was told. Now the job is left as
	// it was and the page says why nothing was ordered, and how to renew
	// anyway; "Renew now anyway" then makes the next attempt renew.
	t.Run("not due", func(t *testing.T) {
		before, err := e.store.Job(t.Context(), key("notdue"))
		if err != nil {
			t.Fatal(err)
		}
		loc := post(t, "notdue", false)
		feedback(t, loc, "not-due", "Not ordered: the certificate is valid and not due for renewal (valid until ")
		feedback(t, loc, "not-due", "Nothing was ordered. To order a new certificate now anyway, use Renew now anyway.")
		after, err := e.store.Job(t.Context(), key("notdue"))
		if err != nil || !after.NextAt.Equal(before.NextAt) || !after.RenewRequested.IsZero() {
			t.Errorf("a retry of a certificate not due changed its job: next %v → %v, renew requested %v (%v)", before.NextAt, after.NextAt, after.RenewRequested, err)
		}
		post(t, "notdue", true)
		if j, err := e.store.Job(t.Context(), key("notdue")); err != nil || j.RenewRequested.IsZero() || j.NextAt.After(time.Now()) {
			t.Errorf("after Renew now anyway: next %v, renew requested %v (%v); want due, renewal requested", j.NextAt, j.RenewRequested, err)
		}
	})
}

// serve replaces the env's dashboard with srv on a new loopback server.
func (e *env) serve(srv *dashboard.Server) {
	e.t.Helper()
	e.srv = srv
	e.http.Close()
	e.http = httptest.NewServer(srv.Handler())
	e.t.Cleanup(e.http.Close)
}

// TestTimeline (issue 15): the timeline draws, per certificate, its
// validity with the alerts' windows, its expiry, and its next renewal,
// marked as a retry for a failing one and as a wait for one a rate-limit
// budget deferred; lanes are paged in the store and scoped like the API.
func TestTimeline(t *testing.T) {
	names := []string{"bad", "fine", "late", "queued", "tenant"}
	var specs []certfleet.CertificateSpec
	for _, n := range names {
		sp := storetest.NewSpec(n)
		if n == "tenant" {
			sp.Tenant = "a"
		}
		specs = append(specs, sp)
	}
	e := newEnv(t, specs...)
	e.serve(&dashboard.Server{Store: e.store, PageSize: 3})
	life := 90 * 24 * time.Hour
	now := time.Now()
	for i, sp := range specs {
		left := map[string]time.Duration{"bad": 20 * 24 * time.Hour, "fine": 60 * 24 * time.Hour, "late": 5 * 24 * time.Hour,
			"queued": 25 * 24 * time.Hour, "tenant": 50 * 24 * time.Hour}[sp.Name]
		key := certfleet.JobKey{Spec: sp.Name, KeyType: sp.KeyTypes[0]}
		e.claim(key)
		iss := storetest.NewIssuance(sp, key.KeyType)
		iss.NotAfter = now.Add(left)
		iss.NotBefore = iss.NotAfter.Add(-life)
		iss.Serial = fmt.Sprintf("%02x", i+1)
		if _, err := e.store.CompleteIssuance(t.Context(), "test", iss, certfleet.ScheduleUpdate{NextAt: now.Add(15 * 24 * time.Hour)},
			certfleet.Attempt{Instance: "test", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeIssued}); err != nil {
			t.Fatal(err)
		}
	}
	e.fail(specs[0], "connection refused", "urn:ietf:params:acme:error:connection")
	qk := certfleet.JobKey{Spec: "queued", KeyType: certfleet.ECDSAP256}
	e.claim(qk)
	if err := e.store.DeferJob(t.Context(), qk, "test", certfleet.Attempt{Instance: "test", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeDeferred,
		Error: "waiting for budget new orders: place 3"}, now.Add(2*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A name of tenant's fails its self-test (issue 14): the order waits.
	if err := e.store.SetWaiting(t.Context(), "tenant", []certfleet.WaitingName{{Spec: "tenant", Tenant: "a",
		Identifier: certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "tenant.example.org"}, Challenge: certfleet.ChallengeHTTP01,
		Code: certfleet.WaitHTTP, Reason: "404 from http://tenant.example.org/.well-known/acme-challenge/x", Since: now, CheckedAt: now,
		NextAt: now.Add(time.Hour), Tests: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	_, admin := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	tid, tenant, thash := certfleet.NewTokenSecret()
	if err := e.store.CreateToken(t.Context(), certfleet.Token{ID: tid, Tenant: "a", Names: []string{"*"},
		Permissions: []certfleet.Permission{certfleet.PermReadCerts}, Hash: thash, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	lanes := regexp.MustCompile(`<g class="tl-lane([a-z ]*)" data-cert="([a-z]+)" data-key="ecdsa-p256">(?s:(.*?))</g>`)
	get := func(t *testing.T, c *http.Cookie, path string) (map[string][2]string, string) {
		t.Helper()
		r := e.do("GET", path, c, nil, nil)
		if r.status != http.StatusOK || !strings.Contains(r.body, `<svg id="timeline"`) {
			t.Fatalf("GET %s: status %d, no timeline:\n%s", path, r.status, r.body)
		}
		out := map[string][2]string{}
		for _, m := range lanes.FindAllStringSubmatch(r.body, -1) {
			out[m[2]] = [2]string{strings.TrimSpace(m[1]), m[3]}
		}
		return out, r.body
	}
	c := e.login(admin)
	p1, body := get(t, c, "/dashboard/timeline")
	if len(p1) != 3 {
		t.Fatalf("page 1 lanes %v, want bad, fine, late", p1)
	}
	// The window is x 250 to 1090 for 30 days: the failing job's next
	// try in an hour is at the left, a renewal in 15 days in the middle.
	for name, want := range map[string]struct{ class, mark string }{
		"bad":  {"failing", `class="tl-mark tl-retry" cx="25[0-3]"`},
		"fine": {"", `class="tl-mark tl-renew" cx="6[67][0-9]"`},
		"late": {"expiring", `class="tl-seg tl-critical"`},
	} {
		l, ok := p1[name]
		if !ok || l[0] != want.class || !regexp.MustCompile(want.mark).MatchString(l[1]) {
			t.Errorf("lane %s: class %q, want %q with %s:\n%s", name, l[0], want.class, want.mark, l[1])
		}
	}
	if b := p1["bad"][1]; !strings.Contains(b, "tl-seg tl-ok") || !strings.Contains(b, "tl-seg tl-warning") || !strings.Contains(b, "tl-seg tl-critical") {
		t.Errorf("a certificate 20 days from expiry does not pass through the warning and critical windows:\n%s", b)
	}
	if !strings.Contains(p1["fine"][1], "expires in 59d →") || strings.Contains(p1["fine"][1], "tl-expiry") {
		t.Errorf("a certificate expiring after the window is not labelled at the right:\n%s", p1["fine"][1])
	}
	if !strings.Contains(p1["late"][1], `class="tl-expiry"`) || strings.Contains(p1["late"][1], `class="tl-seg tl-ok"`) {
		t.Errorf("a certificate expiring within the window has no expiry tick, or is drawn ok:\n%s", p1["late"][1])
	}
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next" id="timeline-next">`).FindStringSubmatch(body)
	if next == nil {
		t.Fatalf("no link to the next lanes:\n%s", body)
	}
	p2, body := get(t, c, strings.ReplaceAll(next[1], "&amp;", "&"))
	if len(p2) != 2 || p2["queued"][0] != "waiting" || !strings.Contains(p2["queued"][1], "tl-mark tl-wait") || p2["tenant"][0] != "waiting" ||
		!strings.Contains(p2["tenant"][1], "names waiting for their self-test (tenant.example.org: 404 from") {
		t.Errorf("page 2 lanes %v, want queued (waiting for a budget) and tenant (a name waiting for its self-test)", p2)
	}
	if strings.Contains(body, `id="timeline-next"`) {
		t.Errorf("the last page links to a next one")
	}
	// Only those expiring within 7 days: late.
	if soon, _ := get(t, c, "/dashboard/timeline?days=7&soon=1"); len(soon) != 1 || soon["late"][0] != "expiring" {
		t.Errorf("days=7&soon=1 lanes %v, want late only", soon)
	}
	// Tenant a sees its lane only.
	if tl, _ := get(t, e.login(tenant), "/dashboard/timeline"); len(tl) != 1 || tl["tenant"][1] == "" {
		t.Errorf("tenant a's timeline lanes %v, want its own only", tl)
	}
}

// TestNotWritten is issue 15, finding 2 on the dashboard: a certificate
// issued but whose files could not be written showed "ok". It is failing,
// says why and when the files are tried again, in the list, on its page
// and on the timeline.
func TestNotWritten(t *testing.T) {
	web, api := storetest.NewSpec("web"), storetest.NewSpec("api")
	e := newEnv(t, web, api)
	e.issue(web, nil)
	e.issue(api, nil)
	const why = `owner "nginxx" of /srv/tls/web: unknown user`
	key := certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}
	if err := e.store.SetDeployState(t.Context(), key, certfleet.DeployState{Error: why, FailedAt: time.Now(), NextAt: time.Now().Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	l := e.do("GET", "/dashboard/", c, nil, nil)
	if !strings.Contains(l.body, `<tr class="row-failing" data-cert="web">`) || !strings.Contains(l.body, `<tr class="row-ok" data-cert="api">`) {
		t.Errorf("web (not written) is not failing, or api (written) not ok:\n%s", l.body)
	}
	if !strings.Contains(l.body, "issued, not written: owner &#34;nginxx&#34; of /srv/tls/web: unknown user") {
		t.Errorf("the list does not say web is not written and why:\n%s", l.body)
	}
	d := e.do("GET", "/dashboard/cert/web", c, nil, nil)
	m := regexp.MustCompile(`id="not-written-ecdsa-p256"><b>issued, not written:</b> ([^<]*)<span class="rel">\(1 failed tries, the newest just now; certfleet writes them again in (9|10) minutes`).FindStringSubmatch(d.body)
	if m == nil || !strings.Contains(m[1], "unknown user") {
		t.Errorf("the certificate page does not say it is not written, why and the next try:\n%s", d.body)
	}
	tl := e.do("GET", "/dashboard/timeline", c, nil, nil)
	if !strings.Contains(tl.body, `<g class="tl-lane failing not-written" data-cert="web"`) || !strings.Contains(tl.body, "issued, NOT WRITTEN (owner") {
		t.Errorf("the timeline does not mark web as not written:\n%s", tl.body)
	}
}
