package ratelimit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/ratelimit"
	"github.com/certfleet/certfleet/solver/webroot"
	"github.com/certfleet/certfleet/sqlite"
)

func TestMain(m *testing.M) { issuetest.Main(m) }

// env is one certfleet installation (real SQLite store, real http-01
// responder) against an in-process Pebble.
type env struct {
	t       *testing.T
	ca      *pebbleca.CA
	dbPath  string
	store   *sqlite.Store
	clock   *issuetest.Clock // shared by the store, the manager and the issuer
	solvers map[certfleet.ChallengeType]certfleet.Solver
	events  *events
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dbPath: filepath.Join(t.TempDir(), "certfleet.db"), clock: issuetest.NewClock(time.Now()), events: &events{}}
	e.store = e.open()
	// The responder reads tokens from whichever store is current.
	ca, http01Solver := issuetest.StartCA(t, pebbleca.Config{}, storeRef{e})
	e.ca = ca
	e.solvers = map[certfleet.ChallengeType]certfleet.Solver{
		certfleet.ChallengeHTTP01: http01Solver,
		// A web root nobody serves: validation through it fails for real.
		certfleet.ChallengeWebroot: &webroot.Solver{Dir: t.TempDir()},
	}
	return e
}

func (e *env) open() *sqlite.Store {
	e.t.Helper()
	s := sqlite.New(e.dbPath)
	s.Now = e.clock.Now
	if err := s.Open(e.t.Context()); err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes the store and opens it again, as a restart does.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.store = e.open()
}

// storeRef is the env's current store as a certfleet.ChallengeStore.
type storeRef struct{ e *env }

func (r storeRef) PutChallenge(ctx context.Context, c certfleet.ChallengeToken) error {
	return r.e.store.PutChallenge(ctx, c)
}
func (r storeRef) DeleteChallenge(ctx context.Context, typ certfleet.ChallengeType, key string) error {
	return r.e.store.DeleteChallenge(ctx, typ, key)
}
func (r storeRef) Challenge(ctx context.Context, typ certfleet.ChallengeType, key string) (certfleet.ChallengeToken, error) {
	return r.e.store.Challenge(ctx, typ, key)
}

// certPEM is the TLS certificate of a test server, as PEM.
func certPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func (e *env) issuer(directory string) *acmeissuer.Issuer {
	e.t.Helper()
	if directory == "" {
		directory = e.ca.DirectoryURL()
	}
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL:    directory,
		TrustedRootsPEM: e.ca.TLSRootPEM(),
		Accounts:        e.store,
		Solvers:         e.solvers,
		PollInterval:    50 * time.Millisecond,
		Contact:         []string{"test@certfleet.test"},
		Now:             e.clock.Now,
	})
	if err != nil {
		e.t.Fatalf("new issuer: %v", err)
	}
	return iss
}

// manager returns a manager with a budget of limits for the default
// account at directory.
func (e *env) manager(iss certfleet.Issuer, directory string, limits ratelimit.Limits, concurrency int) *manager.Manager {
	return &manager.Manager{
		Store:       e.store,
		Issuers:     map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Concurrency: concurrency,
		Now:         e.clock.Now,
		Rand:        func() float64 { return 0 },
		ARIInterval: time.Hour,
		Logger:      testLogger(e.t),
		Events:      e.events,
		Budget: &ratelimit.Budget{Store: e.store, Logger: testLogger(e.t),
			Accounts: map[string]ratelimit.Account{certfleet.DefaultAccount: {CA: directory, Limits: limits}}},
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// events collects the manager's events.
type events struct {
	mu   sync.Mutex
	list []certfleet.Event
}

func (s *events) RecordEvent(_ context.Context, e certfleet.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, e)
	return nil
}

func (s *events) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.list {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func (e *env) sync(specs ...certfleet.CertificateSpec) {
	e.t.Helper()
	for i := range specs {
		specs[i].Source = certfleet.SourceConfig
	}
	if _, err := e.store.SyncSpecs(e.t.Context(), certfleet.SourceConfig, specs); err != nil {
		e.t.Fatalf("sync specs: %v", err)
	}
}

func spec(t *testing.T, name string, ch certfleet.ChallengeType, names ...string) certfleet.CertificateSpec {
	t.Helper()
	ids, err := certfleet.ParseIdentifiers(names)
	if err != nil {
		t.Fatal(err)
	}
	return certfleet.CertificateSpec{Name: name, Identifiers: ids, KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: ch}
}

func runOnce(t *testing.T, m *manager.Manager) manager.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	rep, err := m.RunOnce(ctx)
	if err != nil {
		// Say what was stuck: the jobs still leased and their orders
		// (Pebble is known to wedge under bursts; see pebbleca).
		jobs, _ := m.Store.Jobs(context.Background(), certfleet.JobFilter{Leased: true})
		for _, j := range jobs {
			t.Logf("still leased: %s by %s, order %q", j.JobKey, j.LeaseOwner, j.PendingOrderURL)
		}
		t.Fatalf("RunOnce: %v (after %d results: %s)", err, len(rep.Results), summary(rep))
	}
	return rep
}

func (e *env) job(name string) certfleet.Job {
	e.t.Helper()
	j, err := e.store.Job(e.t.Context(), certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256})
	if err != nil {
		e.t.Fatalf("job %s: %v", name, err)
	}
	return j
}

func (e *env) lastAttempt(name string) certfleet.Attempt {
	e.t.Helper()
	atts, err := e.store.Attempts(e.t.Context(), certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256}, 1)
	if err != nil || len(atts) == 0 {
		e.t.Fatalf("attempts of %s: %v, %v", name, atts, err)
	}
	return atts[0]
}

func summary(rep manager.Report) string {
	var b strings.Builder
	for _, r := range rep.Results {
		if r.Outcome == certfleet.OutcomeFailed {
			fmt.Fprintf(&b, "\n%s: %v", r.Key, r.Err)
		}
	}
	return fmt.Sprintf("issued %d, deferred %d, failed %d%s", rep.Issued, rep.Deferred, rep.Failed, b.String())
}

// TestBurst500 is the test: a burst of 500 names under one
// registered domain, each its own certificate (what a user adding 500
// hostnames means: 500 single-name certificates), with a budget of 50
// certificates per registered domain per week. Exactly 50 are issued and
// the CA saw exactly 50 orders — none refused, none placed past the
// budget; the other 450 are deferred, not failed, each with the reason,
// its place in the budget's queue and the time its turn comes (issue 13:
// the 50 slots that free after a week go to places 1–50, the next 50 a
// week after that, ...), visible in its job, its latest attempt and an
// event. A week later the next 50 go out, and only they are worked on:
// the 400 still waiting are not deferred again.
func TestBurst500(t *testing.T) {
	if testing.Short() {
		t.Skip("500 jobs against Pebble")
	}
	e := newEnv(t)
	specs := make([]certfleet.CertificateSpec, 500)
	for i := range specs {
		specs[i] = spec(t, fmt.Sprintf("a%03d", i+1), certfleet.ChallengeHTTP01, fmt.Sprintf("a%d.example.com", i+1))
	}
	e.sync(specs...)
	week := 7 * 24 * time.Hour
	limits := ratelimit.Limits{CertificatesPerDomain: ratelimit.Limit{Count: 50, Window: week}}
	// 4 orders in flight: Pebble v2.10.1 wedges under bursts, seen with
	// 11 in flight on a loaded machine (internal/multitest).
	m := e.manager(e.issuer(""), e.ca.DirectoryURL(), limits, 4)
	t0 := e.clock.Now()
	rep := runOnce(t, m)
	if rep.Issued != 50 || rep.Deferred != 450 || rep.Failed != 0 {
		t.Fatalf("first pass: %s; want 50 issued, 450 deferred", summary(rep))
	}
	if n := e.ca.NewOrders(); n != 50 {
		t.Fatalf("the CA saw %d new orders, want exactly 50", n)
	}
	if n := e.events.count(certfleet.EventDeferred); n != 450 {
		t.Errorf("%d deferred events, want 450", n)
	}
	waits, err := e.store.BudgetWaits(t.Context(), certfleet.BudgetWaitFilter{})
	if err != nil || len(waits) != 450 {
		t.Fatalf("BudgetWaits: %d, %v; want the 450 deferred jobs waiting", len(waits), err)
	}
	deferred := 0
	for i, w := range waits {
		sp := w.Job.Spec
		j := e.job(sp)
		if j.CurrentID != 0 {
			t.Fatalf("%s waits for the budget but has a certificate", sp)
		}
		deferred++
		// Places 1–50 get the slots the first 50 certificates free a
		// week later, 51–100 the week after, and so on.
		wantUntil := t0.Add(time.Duration((i/50)+1) * week)
		if w.Place != i+1 || w.Bucket != "domain|example.com" || w.Turn.Sub(wantUntil).Abs() > time.Millisecond {
			t.Fatalf("wait %d: %+v; want place %d in the domain's queue, turn at %v", i, w, i+1, wantUntil)
		}
		a := e.lastAttempt(sp)
		if j.Failures != 0 || j.LastError != "" {
			t.Fatalf("%s: failures %d, last error %q: a deferral is not a failure", sp, j.Failures, j.LastError)
		}
		if a.Outcome != certfleet.OutcomeDeferred || !strings.Contains(a.Error, "certificates for registered domain example.com") ||
			!strings.Contains(a.Error, "50 of 50") || !strings.Contains(a.Error, wantUntil.UTC().Format(time.RFC3339)) ||
			!strings.Contains(a.Error, fmt.Sprintf("at place %d,", i+1)) {
			t.Fatalf("%s: latest attempt %+v; want deferred, naming the domain budget, place %d and %v", sp, a, i+1, wantUntil)
		}
		if j.NextAt.Sub(wantUntil).Abs() > time.Millisecond {
			t.Fatalf("%s: next at %v, want %v (its turn)", sp, j.NextAt, wantUntil)
		}
	}
	if deferred != 450 {
		t.Fatalf("%d jobs without a certificate, want 450", deferred)
	}
	place51 := waits[50].Job.Spec

	// Nothing is ordered before the week is over: the deferred jobs are
	// not even due (the issued ones are only re-checked for ARI).
	e.clock.Advance(week - time.Minute)
	rep = runOnce(t, m)
	for _, r := range rep.Results {
		if e.job(r.Key.Spec).CurrentID == 0 {
			t.Fatalf("a minute before the budget frees, deferred job %s was worked on: %s", r.Key, r.Outcome)
		}
	}
	if rep.Issued != 0 || rep.Failed != 0 || e.ca.NewOrders() != 50 {
		t.Fatalf("a minute before the budget frees: %s, CA orders %d; want no order", summary(rep), e.ca.NewOrders())
	}
	// A week later the budget has room for 50 more: the first 50 in the
	// queue are issued; the other 400 are neither worked on nor deferred
	// again.
	e.clock.Advance(2 * time.Minute)
	rep = runOnce(t, m)
	if len(rep.Results) != 50 || rep.Issued != 50 || rep.Failed != 0 || e.ca.NewOrders() != 100 ||
		e.events.count(certfleet.EventDeferred) != 450 || e.events.count(certfleet.EventReleased) != 50 {
		t.Fatalf("a week later: %d worked on, %s, CA orders %d, deferred events %d, released %d; want 50 worked on and issued, none deferred again, 50 released",
			len(rep.Results), summary(rep), e.ca.NewOrders(), e.events.count(certfleet.EventDeferred), e.events.count(certfleet.EventReleased))
	}
	// The queue moved up: the 51st is now first.
	if waits, err := e.store.BudgetWaits(t.Context(), certfleet.BudgetWaitFilter{}); err != nil || len(waits) != 400 ||
		waits[0].Place != 1 || waits[0].Job.Spec != place51 {
		t.Fatalf("still waiting: %d, %v; want 400, led by %s (place 51 before)", len(waits), err, place51)
	}
}

// TestNewOrdersPerAccount: with 3 new orders per 3 hours, 5 certificates
// under 5 registered domains get 3 orders; the other 2 wait for the
// account's order budget, without running their prepare commands.
func TestNewOrdersPerAccount(t *testing.T) {
	e := newEnv(t)
	var specs []certfleet.CertificateSpec
	for i := range 5 {
		specs = append(specs, spec(t, fmt.Sprintf("c%d", i), certfleet.ChallengeHTTP01, fmt.Sprintf("www.site%d.test", i)))
	}
	e.sync(specs...)
	limits := ratelimit.Limits{NewOrdersPerAccount: ratelimit.Limit{Count: 3, Window: 3 * time.Hour}}
	m := e.manager(e.issuer(""), e.ca.DirectoryURL(), limits, 1)
	var prepared atomic.Int64
	m.Prepare = func(context.Context, certfleet.CertificateSpec) (func(), error) { prepared.Add(1); return nil, nil }
	rep := runOnce(t, m)
	if rep.Issued != 3 || rep.Deferred != 2 || e.ca.NewOrders() != 3 {
		t.Fatalf("%s, CA orders %d; want 3 issued and 3 orders, 2 deferred", summary(rep), e.ca.NewOrders())
	}
	// Work certain to be deferred does not run the prepare commands.
	if n := prepared.Load(); n != 3 {
		t.Errorf("Prepare ran %d times, want 3 (not for the deferred)", n)
	}
	for i := range 5 {
		name := fmt.Sprintf("c%d", i)
		if e.job(name).CurrentID != 0 {
			continue
		}
		if a := e.lastAttempt(name); !strings.Contains(a.Error, `new orders of account "default"`) || !strings.Contains(a.Error, "3 of 3 used in the last 3h") {
			t.Errorf("%s: %q; want the account's order budget named", name, a.Error)
		}
	}
}

// faultProxy is a TLS reverse proxy in front of Pebble that answers
// newOrder with a rateLimited problem while limited is set: the one thing
// Pebble cannot be made to do.
type faultProxy struct {
	srv     *httptest.Server
	limited atomic.Bool
	reject  atomic.Bool // answer newOrder with rejectedIdentifier instead
	// noReplaces refuses a newOrder carrying ARI "replaces" (as a CA does
	// for a certificate already replaced) and passes it on without.
	noReplaces atomic.Bool
	refused    atomic.Int64
}

// carriesReplaces reports whether the JWS body of a newOrder request has
// "replaces" in its payload; r.Body stays readable.
func carriesReplaces(r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	var jws struct{ Payload string }
	if json.Unmarshal(body, &jws) != nil {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	return err == nil && bytes.Contains(payload, []byte(`"replaces"`))
}

func newFaultProxy(t *testing.T, ca *pebbleca.CA, retryAfter time.Duration) *faultProxy {
	t.Helper()
	target, err := url.Parse(ca.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	p := &faultProxy{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // Pebble builds its URLs from Host: keep them pointing here
		},
		Transport: ca.HTTPClient().Transport,
	}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.reject.Load() && r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"policy forbids issuing for this name","status":400}`)
			return
		}
		if p.noReplaces.Load() && r.Method == http.MethodPost && r.URL.Path == "/order-plz" && carriesReplaces(r) {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"type":"urn:ietf:params:acme:error:alreadyReplaced","detail":"the certificate has already been replaced","status":409}`)
			return
		}
		if p.limited.Load() && r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Seconds())))
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders (300) from this account in the last 3h0m0s","status":429}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// issuerVia returns an issuer reaching Pebble through the proxy.
func (e *env) issuerVia(p *faultProxy) *acmeissuer.Issuer {
	e.t.Helper()
	roots := append(e.ca.TLSRootPEM(), certPEM(p.srv)...)
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL:    p.srv.URL + "/dir",
		TrustedRootsPEM: roots,
		Accounts:        e.store,
		Solvers:         e.solvers,
		PollInterval:    50 * time.Millisecond,
		Now:             e.clock.Now,
	})
	if err != nil {
		e.t.Fatalf("new issuer: %v", err)
	}
	return iss
}

// TestRetryAfterSurvivesRestart: the CA answers rateLimited with a
// Retry-After of an hour. That job fails (the CA refused it), the account
// is held, and the other job is deferred without asking the CA. After a
// restart (store reopened, new manager and budget) nothing is attempted
// before the hour is over, even though the CA would now accept; after it,
// both are issued.
func TestRetryAfterSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	p := newFaultProxy(t, e.ca, time.Hour)
	p.limited.Store(true)
	dir := p.srv.URL + "/dir"
	e.sync(spec(t, "one", certfleet.ChallengeHTTP01, "one.example.com"), spec(t, "two", certfleet.ChallengeHTTP01, "two.example.org"))
	m := e.manager(e.issuerVia(p), dir, ratelimit.Limits{}, 1) // a CA without budgets: the hold still applies
	t0 := e.clock.Now()
	rep := runOnce(t, m)
	if rep.Failed != 1 || rep.Deferred != 1 || p.refused.Load() != 1 {
		t.Fatalf("%s, refused %d; want one refused by the CA, the other deferred without asking", summary(rep), p.refused.Load())
	}
	var failed, deferred string
	for _, r := range rep.Results {
		if r.Outcome == certfleet.OutcomeFailed {
			failed = r.Key.Spec
		} else {
			deferred = r.Key.Spec
		}
	}
	until := t0.Add(time.Hour)
	a := e.lastAttempt(deferred)
	if a.Outcome != certfleet.OutcomeDeferred || !strings.Contains(a.Error, "answered rateLimited") ||
		!strings.Contains(a.Error, "too many new orders") {
		t.Fatalf("deferred job's attempt: %+v", a)
	}
	if j := e.job(failed); j.Failures != 1 || j.NextAt.Before(until.Add(-time.Second)) {
		t.Fatalf("refused job: failures %d, next %v; want 1 failure and no retry before %v", j.Failures, j.NextAt, until)
	}

	// Restart: a new store handle, a new manager and budget; the CA no
	// longer limits, but the hold stands.
	p.limited.Store(false)
	e.reopen()
	holds, err := e.store.RateHolds(t.Context(), e.clock.Now())
	if err != nil || len(holds) != 1 || holds[0].Account != certfleet.DefaultAccount || holds[0].CA != dir ||
		holds[0].Until.Sub(until).Abs() > 2*time.Second {
		t.Fatalf("holds after restart: %+v, %v; want the account held until %v", holds, err, until)
	}
	m = e.manager(e.issuerVia(p), dir, ratelimit.Limits{}, 1)
	// Make both due now, as an operator's retry would: the hold still
	// keeps the orders back.
	for _, name := range []string{"one", "two"} {
		if err := e.store.RetryNow(t.Context(), certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(30 * time.Minute)
	rep = runOnce(t, m)
	if rep.Deferred != 2 || e.ca.NewOrders() != 0 || p.refused.Load() != 1 {
		t.Fatalf("after restart, within the hour: %s, CA orders %d; want both deferred, no order", summary(rep), e.ca.NewOrders())
	}
	for _, name := range []string{"one", "two"} {
		if j := e.job(name); j.NextAt.Sub(until).Abs() > 2*time.Second {
			t.Errorf("%s: next at %v, want the CA's time %v", name, j.NextAt, until)
		}
	}
	e.clock.Advance(31 * time.Minute)
	rep = runOnce(t, m)
	if rep.Issued != 2 || e.ca.NewOrders() != 2 {
		t.Fatalf("after the hour: %s, CA orders %d; want both issued", summary(rep), e.ca.NewOrders())
	}
}

// TestRenewalWithReplacesIsExempt: with every budget at one, a first
// certificate uses them up and a second name waits; the first one's
// renewal, which carries ARI "replaces", is placed anyway.
func TestRenewalWithReplacesIsExempt(t *testing.T) {
	e := newEnv(t)
	e.sync(spec(t, "r", certfleet.ChallengeHTTP01, "r.example.com"))
	week := 7 * 24 * time.Hour
	limits := ratelimit.Limits{
		NewOrdersPerAccount:    ratelimit.Limit{Count: 1, Window: 3 * time.Hour},
		CertificatesPerDomain:  ratelimit.Limit{Count: 1, Window: week},
		CertificatesPerNameSet: ratelimit.Limit{Count: 1, Window: week},
	}
	m := e.manager(e.issuer(""), e.ca.DirectoryURL(), limits, 1)
	if rep := runOnce(t, m); rep.Issued != 1 {
		t.Fatalf("first: %s", summary(rep))
	}
	e.sync(spec(t, "r", certfleet.ChallengeHTTP01, "r.example.com"), spec(t, "s", certfleet.ChallengeHTTP01, "s.example.com"))
	if rep := runOnce(t, m); rep.Deferred != 1 || e.ca.NewOrders() != 1 {
		t.Fatalf("second name: %s, CA orders %d; want it deferred", summary(rep), e.ca.NewOrders())
	}
	// The CA moves r's window to now: the next check renews with replaces.
	iss, err := e.store.Issuance(t.Context(), e.job("r").CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := iss.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.ca.SetRenewalInfo(t.Context(), leaf, now.Add(-time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	j := e.job("r")
	e.clock.Advance(j.NextAt.Sub(e.clock.Now()) + time.Second)
	rep := runOnce(t, m)
	var renewed bool
	for _, r := range rep.Results {
		if r.Key.Spec == "r" && r.Outcome == certfleet.OutcomeIssued {
			renewed = true
		}
	}
	if !renewed || e.ca.NewOrders() != 2 {
		t.Fatalf("renewal: %s, CA orders %d; want r renewed (exempt)", summary(rep), e.ca.NewOrders())
	}
	if cur, _ := e.store.Issuance(t.Context(), e.job("r").CurrentID); cur.Replaces != iss.ID {
		t.Fatalf("renewal replaces issuance %d, want %d", cur.Replaces, iss.ID)
	}
	// s is still waiting for the week.
	if j := e.job("s"); j.CurrentID != 0 || !j.NextAt.After(e.clock.Now().Add(6*24*time.Hour)) {
		t.Fatalf("s: current %d, next %v; want still deferred", j.CurrentID, j.NextAt)
	}
}

// TestRefusedReplacesIsCounted: when the CA refuses a renewal's "replaces"
// and the order is placed again without it, the CA counts that order
// against its limits, so the budget must too: with the domain's budget used
// up by the first certificate, the order without "replaces" is deferred,
// not placed.
func TestRefusedReplacesIsCounted(t *testing.T) {
	e := newEnv(t)
	p := newFaultProxy(t, e.ca, 0)
	dir := p.srv.URL + "/dir"
	e.sync(spec(t, "r", certfleet.ChallengeHTTP01, "r.example.com"))
	limits := ratelimit.Limits{CertificatesPerDomain: ratelimit.Limit{Count: 1, Window: 7 * 24 * time.Hour}}
	m := e.manager(e.issuerVia(p), dir, limits, 1)
	if rep := runOnce(t, m); rep.Issued != 1 {
		t.Fatalf("first: %s", summary(rep))
	}
	iss, err := e.store.Issuance(t.Context(), e.job("r").CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := iss.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.ca.SetRenewalInfo(t.Context(), leaf, now.Add(-time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	p.noReplaces.Store(true)
	e.clock.Advance(e.job("r").NextAt.Sub(e.clock.Now()) + time.Second)
	rep := runOnce(t, m)
	if rep.Deferred != 1 || rep.Failed != 0 || p.refused.Load() != 1 || e.ca.NewOrders() != 1 {
		t.Fatalf("renewal whose replaces the CA refused: %s, refused %d, CA orders %d; want it deferred by the domain budget, no order without replaces",
			summary(rep), p.refused.Load(), e.ca.NewOrders())
	}
	if a := e.lastAttempt("r"); a.Outcome != certfleet.OutcomeDeferred || !strings.Contains(a.Error, "registered domain example.com") {
		t.Fatalf("attempt: %+v; want a deferral naming the domain budget", a)
	}
}

// TestFailedValidationsLimit: validations that fail for real (a web root
// nobody serves) are counted per name; after 2 failures in the hour the
// third order is not placed but deferred until the first failure is an
// hour old, and then it is tried again.
func TestFailedValidationsLimit(t *testing.T) {
	e := newEnv(t)
	e.sync(spec(t, "bad", certfleet.ChallengeWebroot, "bad.example.com"))
	limits := ratelimit.Limits{FailedValidationsPerName: ratelimit.Limit{Count: 2, Window: time.Hour}}
	m := e.manager(e.issuer(""), e.ca.DirectoryURL(), limits, 1)
	key := certfleet.JobKey{Spec: "bad", KeyType: certfleet.ECDSAP256}
	t0 := e.clock.Now().Truncate(time.Microsecond) // as stored
	for i := range 2 {
		rep := runOnce(t, m)
		if rep.Failed != 1 {
			t.Fatalf("attempt %d: %s; want a failed validation", i+1, summary(rep))
		}
		if a := e.lastAttempt("bad"); a.Outcome != certfleet.OutcomeFailed || !strings.Contains(a.Error, `authorization for "bad.example.com"`) {
			t.Fatalf("attempt %d: %+v", i+1, a)
		}
		e.clock.Advance(time.Minute)
		if err := e.store.RetryNow(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.ca.NewOrders(); n != 2 {
		t.Fatalf("CA orders %d, want 2", n)
	}
	rep := runOnce(t, m)
	if rep.Deferred != 1 || e.ca.NewOrders() != 2 {
		t.Fatalf("third: %s, CA orders %d; want deferred without an order", summary(rep), e.ca.NewOrders())
	}
	a := e.lastAttempt("bad")
	if !strings.Contains(a.Error, `failed validations of bad.example.com by account "default"`) || !strings.Contains(a.Error, "2 of 2") {
		t.Fatalf("deferral: %q", a.Error)
	}
	// The first failure was recorded at about t0 (the clock does not move
	// during an attempt): the job waits until it is an hour old.
	if j := e.job("bad"); j.NextAt.Before(t0.Add(time.Hour)) || j.NextAt.After(t0.Add(time.Hour+time.Second)) || j.Failures != 2 {
		t.Fatalf("deferred to %v with %d failures; want %v and the 2 failures unchanged", j.NextAt, j.Failures, t0.Add(time.Hour))
	}
	e.clock.Advance(time.Hour)
	if rep := runOnce(t, m); rep.Failed != 1 || e.ca.NewOrders() != 3 {
		t.Fatalf("an hour later: %s, CA orders %d; want a new (failing) order", summary(rep), e.ca.NewOrders())
	}
}

// TestPruneOldEntries: the first reservation of a budget deletes log
// entries older than its longest window (and expired holds), so the log
// does not grow without bound; entries inside the window stay.
func TestPruneOldEntries(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	now := e.clock.Now()
	ca := "https://ca.test/dir"
	for _, age := range []time.Duration{30 * 24 * time.Hour, 8 * 24 * time.Hour, 6 * 24 * time.Hour} {
		if err := e.store.RecordBudgetEvent(ctx, ca, "domain|example.com", now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.SetRateHold(ctx, certfleet.RateHold{CA: ca, Account: "old", Until: now.Add(-9 * 24 * time.Hour), Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	b := &ratelimit.Budget{Store: e.store, Accounts: map[string]ratelimit.Account{"default": {CA: ca,
		Limits: ratelimit.Limits{CertificatesPerDomain: ratelimit.Limit{Count: 50, Window: 7 * 24 * time.Hour}}}}}
	ids, _ := certfleet.ParseIdentifiers([]string{"www.example.com"})
	if _, err := b.Reserve(ctx, certfleet.OrderIntent{Account: "default", Identifiers: ids, At: now}); err != nil {
		t.Fatal(err)
	}
	// Count what is left over 100 days: the 6-day-old entry and the new one.
	res, err := e.store.ReserveBudget(ctx, certfleet.BudgetRequest{CA: ca, At: now, Limits: []certfleet.BudgetLimit{
		{Bucket: "domain|example.com", Limit: 1, Window: 100 * 24 * time.Hour, Name: "all", CheckOnly: true}}})
	if err != nil || res.OK || res.Count != 2 {
		t.Fatalf("after pruning: %+v, %v; want 2 entries left", res, err)
	}
	if holds, err := e.store.RateHolds(ctx, now.Add(-20*24*time.Hour)); err != nil || len(holds) != 0 {
		t.Fatalf("holds left: %+v, %v; want the long-expired hold pruned", holds, err)
	}
}

// TestRefunds: the certificate budgets of an order that cannot issue are
// given back. With a budget of one certificate for the domain: an order
// whose validation fails for real gives its slot back; the next attempt
// resumes that (invalid) order, so a new one is reserved, which the CA
// refuses outright — that slot comes back too; and the third attempt is
// issued instead of waiting a week.
func TestRefunds(t *testing.T) {
	e := newEnv(t)
	p := newFaultProxy(t, e.ca, 0)
	dir := p.srv.URL + "/dir"
	limits := ratelimit.Limits{CertificatesPerDomain: ratelimit.Limit{Count: 1, Window: 7 * 24 * time.Hour}}
	e.sync(spec(t, "x", certfleet.ChallengeWebroot, "x.example.com"))
	m := e.manager(e.issuerVia(p), dir, limits, 1)
	key := certfleet.JobKey{Spec: "x", KeyType: certfleet.ECDSAP256}
	if rep := runOnce(t, m); rep.Failed != 1 || e.ca.NewOrders() != 1 {
		t.Fatalf("first: %s, CA orders %d; want a failed validation", summary(rep), e.ca.NewOrders())
	}
	if j := e.job("x"); j.PendingOrderURL == "" {
		t.Fatal("the failed order is not kept for the next attempt")
	}
	// Now answerable, but the CA refuses the new order.
	e.sync(spec(t, "x", certfleet.ChallengeHTTP01, "x.example.com"))
	p.reject.Store(true)
	if err := e.store.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if rep := runOnce(t, m); rep.Failed != 1 || p.refused.Load() != 1 || e.ca.NewOrders() != 1 {
		t.Fatalf("second: %s, refused %d, CA orders %d; want the new order refused", summary(rep), p.refused.Load(), e.ca.NewOrders())
	}
	p.reject.Store(false)
	if err := e.store.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if rep := runOnce(t, m); rep.Issued != 1 || e.ca.NewOrders() != 2 {
		t.Fatalf("third: %s, CA orders %d; want issued, the budget given back twice", summary(rep), e.ca.NewOrders())
	}
}
