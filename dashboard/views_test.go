package dashboard_test

import (
	"fmt"
	"net/http"
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
	if !strings.Contains(r.body, "expiring <b>2</b>") {
		t.Errorf("the counts do not say 2 expiring:\n%s", r.body)
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
	e.srv = &dashboard.Server{Store: e.store, Thresholds: alert.Settings{ExpiryWarning: time.Hour, ExpiryCritical: 30 * time.Minute}}
	e.http.Config.Handler = e.srv.Handler()
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
