package dashboard_test

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// env is a dashboard on a real SQLite store, served over loopback HTTP.
type env struct {
	t      testing.TB
	store  *sqlite.Store
	srv    *dashboard.Server
	http   *httptest.Server
	offset atomic.Int64 // added to the clock, in ns
	events *eventLog
	woken  atomic.Int32
}

// eventLog is an EventSink that keeps what it is given (the audit store
// is another helper's; the dashboard only needs to hand events over).
type eventLog struct {
	mu     sync.Mutex // guards events
	events []certfleet.Event
}

func (l *eventLog) RecordEvent(_ context.Context, e certfleet.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

func (l *eventLog) all() []certfleet.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]certfleet.Event(nil), l.events...)
}

func newEnv(t testing.TB, specs ...certfleet.CertificateSpec) *env {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	if len(specs) > 0 {
		if _, err := store.SyncSpecs(t.Context(), certfleet.SourceConfig, specs); err != nil {
			t.Fatalf("sync specs: %v", err)
		}
	}
	e := &env{t: t, store: store, events: &eventLog{}}
	e.srv = &dashboard.Server{Store: store, Events: e.events, Wake: func() { e.woken.Add(1) },
		Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }}
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.http.Close)
	return e
}

// token creates a token and returns it and its secret.
func (e *env) token(desc string, names []string, perms ...certfleet.Permission) (certfleet.Token, string) {
	e.t.Helper()
	id, secret, hash := certfleet.NewTokenSecret()
	tok := certfleet.Token{ID: id, Description: desc, Names: names, Permissions: perms, Hash: hash, CreatedAt: time.Now()}
	if err := e.store.CreateToken(e.t.Context(), tok); err != nil {
		e.t.Fatalf("create token: %v", err)
	}
	return tok, secret
}

type resp struct {
	status int
	body   string
	header http.Header
	cookie *http.Cookie // the session cookie set, if any
}

// do sends one request without following redirects.
func (e *env) do(method, path string, cookie *http.Cookie, form url.Values, hdr map[string]string) resp {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.http.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, body: string(b), header: res.Header}
	for _, c := range res.Cookies() {
		if c.Name == "certfleet_session" {
			r.cookie = c
		}
	}
	return r
}

// login logs in with secret and returns the session cookie.
func (e *env) login(secret string) *http.Cookie {
	e.t.Helper()
	r := e.do("POST", "/dashboard/login", nil, url.Values{"token": {secret}}, nil)
	if r.status != http.StatusSeeOther || r.cookie == nil || r.header.Get("Location") != "/dashboard/" {
		e.t.Fatalf("login: status %d, cookie %v, location %q, want 303 to /dashboard/ with a cookie\n%s", r.status, r.cookie, r.header.Get("Location"), r.body)
	}
	return r.cookie
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the session's pages.
func (e *env) csrf(cookie *http.Cookie) string {
	e.t.Helper()
	r := e.do("GET", "/dashboard/", cookie, nil, nil)
	m := csrfRE.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		e.t.Fatalf("no CSRF token on the list page (status %d):\n%s", r.status, r.body)
	}
	return m[1]
}

// issue completes an issuance of sp's first key type.
func (e *env) issue(sp certfleet.CertificateSpec, mutate func(*certfleet.Issuance)) certfleet.Issuance {
	e.t.Helper()
	kt := sp.KeyTypes[0]
	e.claim(certfleet.JobKey{Spec: sp.Name, KeyType: kt})
	iss := storetest.NewIssuance(sp, kt)
	if mutate != nil {
		mutate(&iss)
	}
	iss, err := e.store.CompleteIssuance(e.t.Context(), "test", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)},
		certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeIssued})
	if err != nil {
		e.t.Fatalf("complete issuance of %s: %v", sp.Name, err)
	}
	return iss
}

// fail records a failed attempt of sp's first key type, next due in an hour.
func (e *env) fail(sp certfleet.CertificateSpec, msg, problem string) {
	e.t.Helper()
	key := certfleet.JobKey{Spec: sp.Name, KeyType: sp.KeyTypes[0]}
	e.claim(key)
	err := e.store.FailJob(e.t.Context(), key, "test", certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(),
		Outcome: certfleet.OutcomeFailed, Error: msg, ProblemType: problem}, time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatalf("fail job %s: %v", key, err)
	}
}

// claim leases key to "test", making it due first if need be.
func (e *env) claim(key certfleet.JobKey) {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.store.RetryNow(ctx, key); err != nil {
		e.t.Fatal(err)
	}
	jobs, err := e.store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "test", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 100000})
	if err != nil {
		e.t.Fatal(err)
	}
	found := false
	for _, j := range jobs {
		if j.JobKey == key {
			found = true
			continue
		}
		if err := e.store.ReleaseLease(ctx, j.JobKey, "test"); err != nil {
			e.t.Fatal(err)
		}
	}
	if !found {
		e.t.Fatalf("job %s not claimed", key)
	}
}

func rows(body string) int { return strings.Count(body, `data-cert="`) }

func TestNoSessionShowsLogin(t *testing.T) {
	e := newEnv(t, storetest.NewSpec("web"))
	for _, path := range []string{"/dashboard/", "/dashboard/cert/web"} {
		r := e.do("GET", path, nil, nil, nil)
		if r.status != http.StatusOK || !strings.Contains(r.body, `name="token"`) || strings.Contains(r.body, "web.example.org") {
			t.Errorf("GET %s without a session: status %d, want the login form and no certificate:\n%s", path, r.status, r.body)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: CSP %q, X-Frame-Options %q", path, csp, r.header.Get("X-Frame-Options"))
		}
	}
	if r := e.do("POST", "/dashboard/cert/web/retry", nil, url.Values{}, nil); r.status != http.StatusUnauthorized {
		t.Errorf("POST retry without a session: status %d, want 401", r.status)
	}
	if r := e.do("GET", "/dashboard/static/style.css", nil, nil, nil); r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("style sheet: status %d, type %q", r.status, r.header.Get("Content-Type"))
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t, storetest.NewSpec("web"))
	_, admin := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	_, requester := e.token("panel", []string{"*"}, certfleet.PermRequestNames)
	urlID, urlSecret, urlHash := certfleet.NewTokenSecret()
	if err := e.store.CreateToken(t.Context(), certfleet.Token{ID: urlID, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermReadCerts},
		URLCredential: true, Hash: urlHash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	revokedTok, revoked := e.token("old", []string{"*"}, certfleet.PermAdmin)
	if err := e.store.RevokeToken(t.Context(), revokedTok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, unknown, _ := certfleet.NewTokenSecret()
	for _, tc := range []struct {
		name, secret string
		status       int
		msg          string
	}{
		{"empty", "", http.StatusUnauthorized, "not a certfleet API token"},
		{"not a token", "hunter2", http.StatusUnauthorized, "not a certfleet API token"},
		{"unknown", unknown, http.StatusUnauthorized, "not valid"},
		{"revoked", revoked, http.StatusUnauthorized, "not valid"},
		{"URL credential", urlSecret, http.StatusForbidden, "URL credential"},
		{"no read-certs", requester, http.StatusForbidden, "lacks the read-certs permission"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/dashboard/login", nil, url.Values{"token": {tc.secret}}, nil)
			if r.status != tc.status || !strings.Contains(r.body, tc.msg) || r.cookie != nil {
				t.Errorf("status %d, cookie %v, want %d with %q and no cookie:\n%s", r.status, r.cookie, tc.status, tc.msg, r.body)
			}
		})
	}

	c := e.login(admin)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/dashboard/" || c.Secure {
		t.Errorf("session cookie over plain HTTP: HttpOnly %v, SameSite %v, Path %q, Secure %v; want true, Strict, /dashboard/, false",
			c.HttpOnly, c.SameSite, c.Path, c.Secure)
	}
	hash := certfleet.HashTokenSecret(admin)
	if strings.Contains(c.Value, admin) || strings.Contains(c.Value, strings.TrimPrefix(admin, certfleet.TokenPrefix)) || strings.Contains(c.Value, hex.EncodeToString(hash)) {
		t.Errorf("the session cookie carries the token or its hash: %q", c.Value)
	}
	if r := e.do("GET", "/dashboard/", c, nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, "web.example.org") || !strings.Contains(r.body, "ops (tok_") {
		t.Errorf("the list with the session: status %d\n%s", r.status, r.body)
	}

	// Over TLS the cookie is Secure.
	req := httptest.NewRequest("POST", "https://certfleet.example/dashboard/login", strings.NewReader(url.Values{"token": {admin}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if cs := rec.Result().Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("session cookie over TLS: %v, want one Secure cookie", cs)
	}
}

func TestSessionEnds(t *testing.T) {
	e := newEnv(t, storetest.NewSpec("web"))
	tok, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	loggedOut := func(t *testing.T, c *http.Cookie, msg string) {
		t.Helper()
		r := e.do("GET", "/dashboard/", c, nil, nil)
		if !strings.Contains(r.body, `name="token"`) || strings.Contains(r.body, "web.example.org") || !strings.Contains(r.body, msg) {
			t.Errorf("status %d: want the login form saying %q:\n%s", r.status, msg, r.body)
		}
		if r.cookie == nil || r.cookie.MaxAge >= 0 {
			t.Errorf("the dead session's cookie was not cleared: %v", r.cookie)
		}
	}
	t.Run("tampered", func(t *testing.T) {
		c := e.login(secret)
		other, _ := e.token("other", []string{"*"}, certfleet.PermAdmin)
		c.Value = strings.Replace(c.Value, tok.ID, other.ID, 1)
		loggedOut(t, c, "expired")
	})
	t.Run("expired", func(t *testing.T) {
		c := e.login(secret)
		e.offset.Store(int64(dashboard.DefaultSessionTTL + time.Second))
		defer e.offset.Store(0)
		loggedOut(t, c, "expired")
	})
	t.Run("logout", func(t *testing.T) {
		c := e.login(secret)
		if r := e.do("POST", "/dashboard/logout", c, url.Values{}, nil); r.status != http.StatusForbidden {
			t.Errorf("logout without the CSRF token: status %d, want 403", r.status)
		}
		r := e.do("POST", "/dashboard/logout", c, url.Values{"csrf": {e.csrf(c)}}, nil)
		if r.status != http.StatusSeeOther || r.cookie == nil || r.cookie.MaxAge >= 0 {
			t.Fatalf("logout: status %d, cookie %v; want 303 and the cookie cleared", r.status, r.cookie)
		}
		loggedOut(t, c, "logged out") // a kept copy of the cookie is dead too
	})
	t.Run("revoked", func(t *testing.T) {
		c := e.login(secret)
		if r := e.do("GET", "/dashboard/", c, nil, nil); !strings.Contains(r.body, "web.example.org") {
			t.Fatalf("the session does not work before the revocation:\n%s", r.body)
		}
		if err := e.store.RevokeToken(t.Context(), tok.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		loggedOut(t, c, "revoked")
	})
}

func TestRetry(t *testing.T) {
	web, api := storetest.NewSpec("web"), storetest.NewSpec("api")
	e := newEnv(t, web, api)
	e.fail(web, "connection refused", "urn:ietf:params:acme:error:connection")
	e.fail(api, "connection refused", "urn:ietf:params:acme:error:connection")
	webKey := certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}
	notDue := func(t *testing.T) {
		t.Helper()
		j, err := e.store.Job(t.Context(), webKey)
		if err != nil || !j.NextAt.After(time.Now().Add(30*time.Minute)) {
			t.Errorf("the job was made due (next at %v, err %v)", j.NextAt, err)
		}
	}

	t.Run("non-admin", func(t *testing.T) {
		_, secret := e.token("viewer", []string{"*"}, certfleet.PermReadCerts, certfleet.PermRequestNames)
		c := e.login(secret)
		for _, path := range []string{"/dashboard/", "/dashboard/cert/web"} {
			if r := e.do("GET", path, c, nil, nil); strings.Contains(r.body, "/retry") || strings.Contains(r.body, "Retry") {
				t.Errorf("GET %s shows a retry button to a non-admin:\n%s", path, r.body)
			}
		}
		// A forged POST with the session's own valid CSRF token.
		r := e.do("POST", "/dashboard/cert/web/retry", c, url.Values{"csrf": {e.csrf(c)}}, nil)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "admin permission") {
			t.Errorf("retry by a non-admin: status %d, want 403 naming the admin permission:\n%s", r.status, r.body)
		}
		notDue(t)
	})

	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)
	csrf := e.csrf(c)
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no CSRF token", url.Values{}, nil},
		{"wrong CSRF token", url.Values{"csrf": {"AAAA" + csrf[4:]}}, nil},
		{"another session's CSRF token", url.Values{"csrf": {e.csrf(e.login(secret))}}, nil},
		{"cross-site (Sec-Fetch-Site)", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"cross-origin (Origin)", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.do("POST", "/dashboard/cert/web/retry", c, tc.form, tc.hdr); r.status != http.StatusForbidden {
				t.Errorf("status %d, want 403:\n%s", r.status, r.body)
			}
			notDue(t)
		})
	}
	if n := len(e.events.all()); n != 0 {
		t.Fatalf("refused retries emitted %d events", n)
	}

	r := e.do("POST", "/dashboard/cert/web/retry", c, url.Values{"csrf": {csrf}}, nil)
	if r.status != http.StatusSeeOther || !regexp.MustCompile(`^/dashboard/cert/web\?retried=\d+$`).MatchString(r.header.Get("Location")) {
		t.Fatalf("retry by an admin: status %d, location %q, want 303 to the certificate page:\n%s", r.status, r.header.Get("Location"), r.body)
	}
	j, err := e.store.Job(t.Context(), webKey)
	if err != nil || j.NextAt.After(time.Now()) {
		t.Errorf("after the retry the job is next due at %v (err %v), want now", j.NextAt, err)
	}
	if other, _ := e.store.Job(t.Context(), certfleet.JobKey{Spec: "api", KeyType: certfleet.ECDSAP256}); !other.NextAt.After(time.Now()) {
		t.Errorf("retrying web made api due too")
	}
	if e.woken.Load() != 1 {
		t.Errorf("the scheduler was woken %d times, want 1", e.woken.Load())
	}
	evs := e.events.all()
	var opsID string
	toks, _ := e.store.Tokens(t.Context())
	for _, tk := range toks {
		if tk.Description == "ops" {
			opsID = tk.ID
		}
	}
	if len(evs) != 1 || evs[0].Kind != certfleet.EventRetry || evs[0].Actor != "token:"+opsID || evs[0].Certificate != "web" ||
		evs[0].KeyType != certfleet.ECDSAP256 || evs[0].Remote == "" || evs[0].At.IsZero() {
		t.Errorf("events %+v, want one retry of web/ecdsa-p256 by token:%s with a remote address", evs, opsID)
	}
	if r := e.do("GET", r.header.Get("Location"), c, nil, nil); !strings.Contains(r.body, "Retry requested") || !strings.Contains(r.body, `id="retry-feedback"`) {
		t.Errorf("the certificate page does not confirm the retry:\n%s", r.body)
	}
}

func TestScope(t *testing.T) {
	web, api := storetest.NewSpec("web"), storetest.NewSpec("api")
	e := newEnv(t, web, api)
	_, secret := e.token("web team", []string{"web.example.org"}, certfleet.PermAdmin)
	c := e.login(secret)
	r := e.do("GET", "/dashboard/", c, nil, nil)
	if rows(r.body) != 1 || !strings.Contains(r.body, "web.example.org") || strings.Contains(r.body, "api.example.org") {
		t.Errorf("a token for web.example.org sees %d rows:\n%s", rows(r.body), r.body)
	}
	if r := e.do("GET", "/dashboard/cert/api", c, nil, nil); r.status != http.StatusNotFound || strings.Contains(r.body, "api.example.org") {
		t.Errorf("the page of a certificate outside the token's names: status %d, want 404:\n%s", r.status, r.body)
	}
	if r := e.do("POST", "/dashboard/cert/api/retry", c, url.Values{"csrf": {e.csrf(c)}}, nil); r.status != http.StatusNotFound {
		t.Errorf("retry of a certificate outside the token's names: status %d, want 404", r.status)
	}
	if r := e.do("GET", "/dashboard/cert/nosuch", c, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("a certificate that does not exist: status %d, want 404", r.status)
	}
}

// TestEscaping puts markup everywhere a stranger can put text: the CA's
// error message, the token's description, an agent's error and command
// output, the filter box. None of it may come out as markup.
func TestEscaping(t *testing.T) {
	web := storetest.NewSpec("web")
	e := newEnv(t, web)
	const evil = `"><script>alert(1)</script><img src=x onerror=alert(2)>`
	iss := e.issue(web, nil)
	e.fail(web, "CA said: "+evil, "urn:ietf:params:acme:error:"+evil)
	if err := e.store.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "lb1", Certificate: "web", KeyType: certfleet.ECDSAP256,
		Serial: evil, Fingerprint: iss.Fingerprint, Error: evil, ReportedAt: time.Now(), TokenID: "tok_x",
		Commands: []certfleet.AgentCommand{{Argv: []string{"reload", evil}, ExitCode: 1, Error: evil, RanAt: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	_, secret := e.token(evil, []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)
	for _, path := range []string{"/dashboard/?q=" + url.QueryEscape(evil), "/dashboard/", "/dashboard/cert/web"} {
		r := e.do("GET", path, c, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, r.status)
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "<img") {
			t.Errorf("GET %s lets markup through:\n%s", path, r.body)
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the hostile text escaped:\n%s", path, r.body)
		}
	}
}

// TestPaging walks the list by its links (keyset cursors, issue 13): next
// and previous pages are exact and stable, the filters keep themselves in
// the links, and the search is by whole names and labels.
func TestPaging(t *testing.T) {
	specs := storetest.NewSpecs("web", 120)
	e := newEnv(t, specs...)
	for _, i := range []int{3, 50, 117} {
		e.fail(specs[i], "validation failed", "urn:ietf:params:acme:error:unauthorized")
	}
	e.issue(specs[0], nil)
	e.issue(specs[1], func(iss *certfleet.Issuance) {
		iss.NotBefore, iss.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	})
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	link := func(body, rel string) string {
		m := regexp.MustCompile(`<a href="([^"]*)" rel="` + rel + `">`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(m[1], "&amp;", "&")
	}
	type want struct {
		rows        int
		first, last string // first and last certificate shown
		prev, next  string // a part of the link; "" for none
		text        string
	}
	check := func(t *testing.T, path string, w want) string {
		t.Helper()
		r := e.do("GET", path, c, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, r.status)
		}
		if got := rows(r.body); got != w.rows {
			t.Errorf("GET %s: %d rows, want %d", path, got, w.rows)
		}
		names := regexp.MustCompile(`data-cert="([^"]+)"`).FindAllStringSubmatch(r.body, -1)
		if w.first != "" && (len(names) == 0 || names[0][1] != w.first || names[len(names)-1][1] != w.last) {
			t.Errorf("GET %s: %d rows, want %s to %s", path, len(names), w.first, w.last)
		}
		prev, next := link(r.body, "prev"), link(r.body, "next")
		if (w.prev == "") != (prev == "") || !strings.Contains(prev, w.prev) {
			t.Errorf("GET %s: previous link %q, want one containing %q", path, prev, w.prev)
		}
		if (w.next == "") != (next == "") || !strings.Contains(next, w.next) {
			t.Errorf("GET %s: next link %q, want one containing %q", path, next, w.next)
		}
		if !strings.Contains(r.body, w.text) {
			t.Errorf("GET %s: the page does not say %q", path, w.text)
		}
		return r.body
	}
	// Forwards by the next links, back by the previous ones.
	p1 := check(t, "/dashboard/", want{50, "web-000000", "web-000049", "", "after=web-000049", "50 certificates"})
	p2 := check(t, link(p1, "next"), want{50, "web-000050", "web-000099", "before=web-000050", "after=web-000099", "50 certificates"})
	p3 := check(t, link(p2, "next"), want{20, "web-000100", "web-000119", "before=web-000100", "", "20 certificates"})
	b2 := check(t, link(p3, "prev"), want{50, "web-000050", "web-000099", "before=web-000050", "after=web-000099", "50 certificates"})
	check(t, link(b2, "prev"), want{50, "web-000000", "web-000049", "", "after=web-000049", "50 certificates"})
	check(t, "/dashboard/?after=web-000119", want{0, "", "", "", "", "No certificates match"})
	check(t, "/dashboard/?after=not%20a%20name", want{50, "web-000000", "web-000049", "", "after=web-000049", "50 certificates"})
	for _, tc := range []struct {
		name, query string
		want
	}{
		{"a name", "q=WEB-000110", want{1, "web-000110", "web-000110", "", "", "1 certificate"}},
		{"a name's first labels", "q=web-000042.example", want{1, "web-000042", "web-000042", "", "", "1 certificate"}},
		{"a domain", "q=example.org", want{50, "web-000000", "web-000049", "", "q=example.org", "50 certificates"}},
		{"not a part of a label", "q=web-00011", want{0, "", "", "", "", "No certificates match this filter"}},
		{"failing", "status=failing", want{3, "web-000003", "web-000117", "", "", "3 certificates"}},
		{"expired", "status=expired", want{1, "web-000001", "web-000001", "", "", "1 certificate"}},
		{"ok", "status=ok", want{1, "web-000000", "web-000000", "", "", "1 certificate"}},
		{"pending", "status=pending", want{50, "web-000002", "web-000053", "", "after=web-000053", "50 certificates"}},
		{"pending, page 2", "status=pending&after=web-000053", want{50, "web-000054", "web-000103", "before=web-000054", "after=web-000103", "50 certificates"}},
		{"nothing", "q=nosuch", want{0, "", "", "", "", "No certificates match this filter"}},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, "/dashboard/?"+tc.query, tc.want) })
	}
	// A filter keeps itself in the paging links.
	r := e.do("GET", "/dashboard/?q=example.org&status=pending", c, nil, nil)
	if next := link(r.body, "next"); next != "/dashboard/?after=web-000053&q=example.org&status=pending" {
		t.Errorf("the next link %q does not keep the filter", next)
	}
	if !strings.Contains(r.body, `href="/dashboard/?q=example.org&amp;status=failing">failing</a>`) {
		t.Errorf("the status links do not keep the search:\n%s", r.body)
	}
}

func TestJobStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	valid := &dashboard.IssuedCert{NotAfter: now.Add(time.Hour)}
	expired := &dashboard.IssuedCert{NotAfter: now.Add(-time.Second)}
	for _, tc := range []struct {
		name       string
		job        certfleet.Job
		cur        *dashboard.IssuedCert
		currentRev bool
		want       string
	}{
		{"issued", certfleet.Job{}, valid, true, dashboard.StatusOK},
		{"never issued", certfleet.Job{}, nil, false, dashboard.StatusPending},
		{"never issued, failing", certfleet.Job{Failures: 2}, nil, false, dashboard.StatusFailing},
		{"renewal failing", certfleet.Job{Failures: 1}, valid, true, dashboard.StatusFailing},
		{"expired and failing", certfleet.Job{Failures: 1}, expired, true, dashboard.StatusExpired},
		{"expired at the second", certfleet.Job{}, &dashboard.IssuedCert{NotAfter: now}, true, dashboard.StatusExpired},
		{"order in flight", certfleet.Job{PendingOrderURL: "https://ca/order/1"}, valid, true, dashboard.StatusRenewing},
		{"leased", certfleet.Job{LeaseOwner: "a", LeaseUntil: now.Add(time.Minute)}, valid, true, dashboard.StatusRenewing},
		{"stale lease", certfleet.Job{LeaseOwner: "a", LeaseUntil: now.Add(-time.Minute)}, valid, true, dashboard.StatusOK},
		{"spec changed", certfleet.Job{}, valid, false, dashboard.StatusRenewing},
		{"issued, not written", certfleet.Job{Deploy: certfleet.DeployState{Error: "unknown user"}}, valid, true, dashboard.StatusFailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dashboard.JobStatus(now, tc.job, tc.cur, tc.currentRev); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestListShowsState checks the list's columns for one certificate of each
// kind: expiry in absolute and relative terms, the error with its problem
// type, and the fleet.
func TestListShowsState(t *testing.T) {
	web, api := storetest.NewSpec("web"), storetest.NewSpec("api")
	e := newEnv(t, web, api)
	iss := e.issue(web, func(iss *certfleet.Issuance) { iss.NotAfter = time.Now().Add(10*24*time.Hour + time.Hour) })
	e.fail(api, "authorization for api.example.org invalid: 404", "urn:ietf:params:acme:error:unauthorized")
	for i, fp := range []string{iss.Fingerprint, "00", iss.Fingerprint} {
		if err := e.store.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: fmt.Sprintf("host%d", i), Certificate: "web", KeyType: certfleet.ECDSAP256,
			Fingerprint: fp, ReportedAt: time.Now(), TokenID: "tok_x"}); err != nil {
			t.Fatal(err)
		}
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	r := e.do("GET", "/dashboard/", c, nil, nil)
	for _, want := range []string{
		iss.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), "in 10 days",
		"2 current", "1 old: host1",
		`title="urn:ietf:params:acme:error:unauthorized">unauthorized</code>`, "authorization for api.example.org invalid: 404",
		`<span class="badge failing">failing</span>`, `<span class="badge ok">ok</span>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the list does not show %q:\n%s", want, r.body)
		}
	}
	d := e.do("GET", "/dashboard/cert/web", c, nil, nil)
	for _, want := range []string{certfleet.FormatSerial(iss.Serial), "host0", "host1", "an old one: host1"} {
		if !strings.Contains(d.body, want) {
			t.Errorf("the certificate page does not show %q:\n%s", want, d.body)
		}
	}
}

// TestListShowsDeferral: a job a rate-limit budget deferred shows why and
// until when, in the list and on the certificate page.
func TestListShowsDeferral(t *testing.T) {
	web := storetest.NewSpec("web")
	e := newEnv(t, web)
	key := certfleet.JobKey{Spec: "web", KeyType: web.KeyTypes[0]}
	e.claim(key)
	until := time.Now().Add(3 * 24 * time.Hour)
	reason := "certificates for registered domain example.org, 50 of 50 used in the last 7d"
	if err := e.store.DeferJob(t.Context(), key, "test", certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(),
		Outcome: certfleet.OutcomeDeferred, Error: reason}, until); err != nil {
		t.Fatal(err)
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	list := e.do("GET", "/dashboard/", c, nil, nil)
	if want := "deferred until " + until.UTC().Format("2006-01-02 15:04 UTC") + ": " + reason; !strings.Contains(list.body, want) {
		t.Errorf("the list does not show %q:\n%s", want, list.body)
	}
	d := e.do("GET", "/dashboard/cert/web", c, nil, nil)
	if !strings.Contains(d.body, `<th>deferred</th>`) || !strings.Contains(d.body, reason) {
		t.Errorf("the certificate page does not show the deferral:\n%s", d.body)
	}
}

// TestListShowsQueuePlace: a job waiting in a rate-limit budget's queue
// shows its place as it is now (issue 13), in the list and on the
// certificate page.
func TestListShowsQueuePlace(t *testing.T) {
	web, api := storetest.NewSpec("web"), storetest.NewSpec("api")
	e := newEnv(t, web, api)
	now := time.Now()
	const ca = "https://acme-v02.api.letsencrypt.org/directory"
	orders := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 1, Window: time.Hour, Name: `new orders of account "default"`}
	if res, err := e.store.ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: ca, At: now, Limits: []certfleet.BudgetLimit{orders}}); err != nil || !res.OK {
		t.Fatalf("fill the budget: %+v, %v", res, err)
	}
	for _, sp := range []certfleet.CertificateSpec{api, web} {
		key := certfleet.JobKey{Spec: sp.Name, KeyType: sp.KeyTypes[0]}
		e.claim(key)
		res, err := e.store.ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: ca, Job: key, At: now, Limits: []certfleet.BudgetLimit{orders}})
		if err != nil || res.Wait == nil {
			t.Fatalf("%s: %+v, %v; want waiting", sp.Name, res, err)
		}
		if err := e.store.DeferJob(t.Context(), key, "test", certfleet.Attempt{Instance: "test", StartedAt: now, FinishedAt: now,
			Outcome: certfleet.OutcomeDeferred, Error: "deferred when it started waiting"}, res.Until); err != nil {
			t.Fatal(err)
		}
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	want := `waiting for budget new orders of account &#34;default&#34;: place 2, turn at `
	if list := e.do("GET", "/dashboard/", c, nil, nil); !strings.Contains(list.body, want) {
		t.Errorf("the list does not show %q:\n%s", want, list.body)
	}
	if d := e.do("GET", "/dashboard/cert/web", c, nil, nil); !strings.Contains(d.body, want) {
		t.Errorf("the certificate page does not show %q:\n%s", want, d.body)
	}
}

// goneAfterRetry is the real store, except that the browser goes away
// (the request's context ends) once the first job has been made due.
type goneAfterRetry struct {
	*sqlite.Store
	leave context.CancelFunc
}

func (s goneAfterRetry) RetryNow(ctx context.Context, key certfleet.JobKey) error {
	err := s.Store.RetryNow(ctx, key)
	s.leave()
	return err
}

// TestRetryOutlivesTheRequest: a browser that goes away in the middle of
// a retry must not leave it half done or keep it out of the audit trail.
func TestRetryOutlivesTheRequest(t *testing.T) {
	web := storetest.NewSpec("web", certfleet.ECDSAP256, certfleet.RSA2048)
	e := newEnv(t, web)
	for _, kt := range web.KeyTypes {
		e.claim(certfleet.JobKey{Spec: "web", KeyType: kt})
		if err := e.store.FailJob(t.Context(), certfleet.JobKey{Spec: "web", KeyType: kt}, "test", certfleet.Attempt{Instance: "test",
			StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeFailed, Error: "refused"}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)

	reqCtx, leave := context.WithCancel(t.Context())
	defer leave()
	srv := &dashboard.Server{Store: goneAfterRetry{e.store, leave}, Events: e.store, SessionKey: e.srv.SessionKey}
	req := httptest.NewRequestWithContext(reqCtx, "POST", "/dashboard/cert/web/retry", strings.NewReader(url.Values{"csrf": {e.csrf(c)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(c)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Errorf("retry: status %d, want 303:\n%s", rec.Code, rec.Body)
	}
	for _, kt := range web.KeyTypes {
		if j, err := e.store.Job(t.Context(), certfleet.JobKey{Spec: "web", KeyType: kt}); err != nil || j.NextAt.After(time.Now()) {
			t.Errorf("web/%s is next due at %v (%v), want now", kt, j.NextAt, err)
		}
	}
	evs, err := e.store.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventRetry})
	if err != nil || len(evs) != 2 {
		t.Errorf("retry events in the audit trail: %+v (%v), want one per key type", evs, err)
	}
}

// TestStoreDownKeepsSession: when the token store cannot be read, a
// session cannot be checked; that is an outage to report, not a logout.
// The cookie must survive, so the operator is back once the store is.
func TestStoreDownKeepsSession(t *testing.T) {
	e := newEnv(t, storetest.NewSpec("web"))
	_, secret := e.token("ops", []string{"*"}, certfleet.PermReadCerts)
	c := e.login(secret)
	if err := e.store.Close(); err != nil { // the store's database goes away
		t.Fatal(err)
	}
	r := e.do("GET", "/dashboard/", c, nil, nil)
	if r.status < 500 || !strings.Contains(r.body, "Reload in a moment") {
		t.Errorf("with the store down: status %d, want a 5xx page saying to reload:\n%s", r.status, r.body)
	}
	if r.cookie != nil {
		t.Errorf("with the store down the session cookie was changed (%v): the operator is logged out by an outage", r.cookie)
	}
}
