package alert_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// clock is a settable clock shared by the evaluators of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// receiver is a real HTTP server standing in for the operator's alert
// endpoint: it records every notification it accepts.
type receiver struct {
	mu     sync.Mutex
	got    []alert.Notification
	auth   []string
	keys   []string
	failN  int // answer 503 to this many requests first
	status int // when set, answer every request with it
	calls  int // requests received
	srv    *httptest.Server
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if r.status != 0 {
			http.Error(w, "receiver says no", r.status)
			return
		}
		if r.failN > 0 {
			r.failN--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		var n alert.Notification
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.got = append(r.got, n)
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) notifications() []alert.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) set(failN, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failN, r.status = failN, status
}

// states lists the notifications as "state/severity".
func states(ns []alert.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.State+"/"+string(n.Severity))
	}
	return out
}

func wantStates(t *testing.T, r *receiver, want ...string) []alert.Notification {
	t.Helper()
	got := r.notifications()
	if fmt.Sprint(states(got)) != fmt.Sprint(want) {
		t.Fatalf("notifications = %v, want %v", states(got), want)
	}
	return got
}

// fixture is a store holding one certificate "web" with a current issuance
// valid for 90 days from t0.
type fixture struct {
	store certfleet.Store
	spec  certfleet.CertificateSpec
	key   certfleet.JobKey
	t0    time.Time
}

func newFixture(t *testing.T, s certfleet.Store) *fixture {
	t.Helper()
	f := &fixture{store: s, spec: storetest.NewSpec("web"), t0: time.Now().UTC().Truncate(time.Second)}
	f.key = certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{f.spec}); err != nil {
		t.Fatal(err)
	}
	f.issue(t, f.t0)
	return f
}

func (f *fixture) claim(t *testing.T) {
	t.Helper()
	if err := f.store.RetryNow(t.Context(), f.key); err != nil {
		t.Fatal(err)
	}
	jobs, err := f.store.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "test", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ClaimDue = %v, %v", jobs, err)
	}
}

// issue makes a new current issuance, valid for 90 days from notBefore.
func (f *fixture) issue(t *testing.T, notBefore time.Time) certfleet.Issuance {
	t.Helper()
	f.claim(t)
	return f.complete(t, notBefore)
}

// complete completes the claimed job with an issuance valid for 90 days
// from notBefore.
func (f *fixture) complete(t *testing.T, notBefore time.Time) certfleet.Issuance {
	t.Helper()
	iss := storetest.NewIssuance(f.spec, f.key.KeyType)
	iss.NotBefore, iss.NotAfter, iss.IssuedAt = notBefore, notBefore.Add(90*24*time.Hour), notBefore
	iss.Fingerprint = fmt.Sprintf("%064x", notBefore.UnixNano())
	got, err := f.store.CompleteIssuance(t.Context(), "test", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)},
		certfleet.Attempt{JobKey: f.key, Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeIssued})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// fail records a failed renewal attempt.
func (f *fixture) fail(t *testing.T, msg string) {
	t.Helper()
	f.claim(t)
	if err := f.store.FailJob(t.Context(), f.key, "test", certfleet.Attempt{JobKey: f.key, Instance: "test",
		StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeFailed, Error: msg}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func day(n float64) time.Duration { return time.Duration(n * float64(24*time.Hour)) }

// TestExpiryLifecycle: a failing renewal near expiry is notified once when
// it opens, once per worse severity, and once when a renewal succeeds,
// however many rounds run in between.
func TestExpiryLifecycle(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	f := newFixture(t, s)
	r := newReceiver(t)
	c := &clock{now: f.t0.Add(day(60))}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now,
		Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL + "/hook/SECRET", BearerToken: "tok-123"}}}
	round := func() alert.Report {
		t.Helper()
		rep, err := e.Round(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// 30 days left and no failure: nothing.
	round()
	// Failing, but outside the warning window (min(30d, 14d)): nothing.
	f.fail(t, "connection refused")
	round()
	wantStates(t, r)
	// 13 days left: warning, once.
	c.Set(f.t0.Add(day(77)))
	for range 3 {
		round()
	}
	c.Set(f.t0.Add(day(78)))
	f.fail(t, "connection refused again")
	round()
	got := wantStates(t, r, "opened/warning")
	n := got[0]
	if n.Kind != certfleet.IncidentExpiry || n.Certificate != "web" || n.KeyType != certfleet.ECDSAP256 ||
		n.Failures != 1 || n.LastError != "connection refused" || !n.NotAfter.Equal(f.t0.Add(day(90))) ||
		n.IncidentID == 0 || !strings.Contains(n.Summary, "renewing it failed 1 time(s)") || n.Instance != "one" {
		t.Errorf("opened notification = %+v", n)
	}
	if r.auth[0] != "Bearer tok-123" || r.keys[0] != n.DeliveryID || n.DeliveryID == "" {
		t.Errorf("headers: Authorization %q, Idempotency-Key %q (delivery %q)", r.auth[0], r.keys[0], n.DeliveryID)
	}
	// 5 days left: critical (a tenth of 90 days is 9, half of 14 is 7).
	c.Set(f.t0.Add(day(85)))
	round()
	round()
	got = wantStates(t, r, "opened/warning", "worsened/critical")
	if got[1].PreviousSeverity != certfleet.SeverityWarning || got[1].Failures != 2 || got[1].IncidentID != n.IncidentID {
		t.Errorf("worsened notification = %+v", got[1])
	}
	// Expired.
	c.Set(f.t0.Add(day(91)))
	round()
	wantStates(t, r, "opened/warning", "worsened/critical", "worsened/expired")
	// Renewed: resolved, once.
	f.issue(t, f.t0.Add(day(91)))
	rep := round()
	if rep.Resolved != 1 || rep.Sent != 1 {
		t.Errorf("resolving round = %+v", rep)
	}
	round()
	got = wantStates(t, r, "opened/warning", "worsened/critical", "worsened/expired", "resolved/expired")
	if got[3].ResolvedAt.IsZero() || !strings.HasPrefix(got[3].Summary, "resolved: ") {
		t.Errorf("resolved notification = %+v", got[3])
	}
	open, err := s.Incidents(t.Context(), certfleet.IncidentFilter{OpenOnly: true})
	if err != nil || len(open) != 0 {
		t.Errorf("open incidents after renewal = %+v, %v", open, err)
	}
}

// TestExpiryRenewalScheduledTooLate: without a failure, a certificate in
// the warning window whose renewal is put off past the critical point (a
// rate-limit deferral, a Retry-After) is an incident too; rescheduled in
// time, it resolves.
func TestExpiryRenewalScheduledTooLate(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	f := newFixture(t, s)
	r := newReceiver(t)
	c := &clock{now: f.t0.Add(day(80))}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL}}}
	reschedule := func(at time.Time) {
		t.Helper()
		f.claim(t)
		if err := s.Reschedule(t.Context(), f.key, "test", certfleet.ScheduleUpdate{NextAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	reschedule(f.t0.Add(day(81))) // 9 days before expiry: before the critical 7
	if _, err := e.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r)
	reschedule(f.t0.Add(day(84))) // deferred to 6 days before expiry
	if _, err := e.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := wantStates(t, r, "opened/warning")
	if got[0].Failures != 0 || !strings.Contains(got[0].Summary, "renewal is not scheduled before") {
		t.Errorf("notification = %+v", got[0])
	}
	reschedule(f.t0.Add(day(80)))
	if _, err := e.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "opened/warning", "resolved/warning")
}

// TestFailedDeliveryStaysOwed: a webhook that fails keeps the
// notification owed; it is sent (once) when the webhook works again, and a
// restart (a new evaluator on the reopened store) does not send it again.
func TestFailedDeliveryStaysOwed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s := openSQLite(t, path)
	f := newFixture(t, s)
	f.fail(t, "unauthorized")
	r := newReceiver(t)
	c := &clock{now: f.t0.Add(day(80))}
	hook := &alert.Webhook{URL: r.srv.URL + "/hook/SECRET-PATH", Retries: -1}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Notifiers: []alert.Notifier{hook}}
	r.set(0, http.StatusInternalServerError)
	rep, err := e.Round(t.Context())
	if err != nil || rep.Opened != 1 || rep.Failed != 1 || rep.Sent != 0 {
		t.Fatalf("round with a failing webhook = %+v, %v", rep, err)
	}
	owed, err := s.Incidents(t.Context(), certfleet.IncidentFilter{Pending: true})
	if err != nil || len(owed) != 1 || owed[0].DeliveryAttempts != 1 || !strings.Contains(owed[0].DeliveryError, "500") {
		t.Fatalf("owed after a failed delivery = %+v, %v", owed, err)
	}
	if strings.Contains(owed[0].DeliveryError, "SECRET-PATH") {
		t.Errorf("the delivery error shows the webhook URL's path: %s", owed[0].DeliveryError)
	}
	// A 400 is not retried within the round (the receiver refuses it; a
	// retry now would fail alike), but stays owed.
	r.set(0, http.StatusBadRequest)
	hook.Retries = 2
	r.mu.Lock()
	r.calls = 0
	r.mu.Unlock()
	if rep, err := e.Round(t.Context()); err != nil || rep.Failed != 1 {
		t.Fatalf("round with a 400 = %+v, %v", rep, err)
	}
	r.mu.Lock()
	calls := r.calls
	r.mu.Unlock()
	if calls != 1 {
		t.Errorf("a 400 was tried %d times within the round, want once", calls)
	}
	// Two 503s, then success: retried within the round.
	r.set(2, 0)
	hook.Retries = 2
	if rep, err := e.Round(t.Context()); err != nil || rep.Sent != 1 {
		t.Fatalf("round with retries = %+v, %v", rep, err)
	}
	wantStates(t, r, "opened/warning")
	// "Restart": a new evaluator on a reopened store sends nothing more.
	s.Close()
	s2 := openSQLite(t, path)
	e2 := &alert.Evaluator{Store: s2, Instance: "two", Now: c.Now, Notifiers: []alert.Notifier{hook}}
	for range 3 {
		if _, err := e2.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	wantStates(t, r, "opened/warning")
}

// TestDeliveryStopsWhenReceiverDown: with the receiver down, a round gives
// up after three failures in a row instead of trying every owed
// notification; all are sent once it is back.
func TestDeliveryStopsWhenReceiverDown(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	t0 := time.Now().UTC()
	var specs []certfleet.CertificateSpec
	for i := range 6 {
		specs = append(specs, storetest.NewSpec(fmt.Sprintf("c%d", i)))
	}
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	if jobs, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "test", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10}); err != nil || len(jobs) != 6 {
		t.Fatalf("ClaimDue = %v, %v", jobs, err)
	}
	var fs []*fixture
	for _, sp := range specs {
		f := &fixture{store: s, spec: sp, key: certfleet.JobKey{Spec: sp.Name, KeyType: certfleet.ECDSAP256}, t0: t0}
		f.complete(t, t0)
		fs = append(fs, f)
	}
	for _, f := range fs {
		f.fail(t, "refused")
	}
	r := newReceiver(t)
	r.set(0, http.StatusBadGateway)
	c := &clock{now: t0.Add(day(80))}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL, Retries: -1}}}
	rep, err := e.Round(t.Context())
	if err != nil || rep.Opened != 6 || rep.Failed != 3 || rep.Sent != 0 {
		t.Fatalf("round with the receiver down = %+v, %v; want 6 opened, 3 failed", rep, err)
	}
	r.set(0, 0)
	if rep, err := e.Round(t.Context()); err != nil || rep.Sent != 6 {
		t.Fatalf("round with the receiver back = %+v, %v; want 6 sent", rep, err)
	}
	wantStates(t, r, "opened/warning", "opened/warning", "opened/warning", "opened/warning", "opened/warning", "opened/warning")
}

// TestTwoEvaluatorsSendOnce: two instances evaluating one store at the
// same time (SQLite: two handles on one file; PostgreSQL: two pools) send
// each transition exactly once.
func TestTwoEvaluatorsSendOnce(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "certfleet.db")
		testTwoEvaluators(t, openSQLite(t, path), openSQLite(t, path))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		testTwoEvaluators(t, openPostgres(t, dsn), openPostgres(t, dsn))
	})
}

func testTwoEvaluators(t *testing.T, a, b certfleet.Store) {
	f := newFixture(t, a)
	r := newReceiver(t)
	c := &clock{now: f.t0.Add(day(80))}
	var evs []*alert.Evaluator
	for i, s := range []certfleet.Store{a, b} {
		evs = append(evs, &alert.Evaluator{Store: s, Instance: fmt.Sprintf("instance-%d", i), Now: c.Now,
			Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL}}})
	}
	rounds := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for _, e := range evs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					if _, err := e.Round(t.Context()); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	f.fail(t, "the CA is down")
	rounds(5)
	wantStates(t, r, "opened/warning")
	c.Set(f.t0.Add(day(86)))
	rounds(5)
	wantStates(t, r, "opened/warning", "worsened/critical")
	f.issue(t, f.t0.Add(day(86)))
	rounds(5)
	got := wantStates(t, r, "opened/warning", "worsened/critical", "resolved/critical")
	for _, n := range got[1:] {
		if n.IncidentID != got[0].IncidentID {
			t.Errorf("notifications of several incidents: %+v", got)
		}
	}
}

// TestAgentStale: an agent still reporting the replaced certificate after
// the grace period opens an incident, graded by the installed copy's
// expiry; its report of the current one resolves it.
func TestAgentStale(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	f := newFixture(t, s)
	old, err := s.Issuance(t.Context(), mustJob(t, s, f.key).CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	renewedAt := f.t0.Add(day(60))
	cur := f.issue(t, renewedAt)
	report := func(iss certfleet.Issuance, at time.Time) {
		t.Helper()
		if err := s.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "lb1", Certificate: "web", KeyType: f.key.KeyType,
			Serial: iss.Serial, Fingerprint: iss.Fingerprint, NotAfter: iss.NotAfter, InstalledAt: at, ReportedAt: at, TokenID: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	report(old, f.t0)
	r := newReceiver(t)
	c := &clock{now: renewedAt.Add(23 * time.Hour)} // grace: min(9 days, 1 day)
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL}}}
	round := func() {
		t.Helper()
		if _, err := e.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	round()
	wantStates(t, r)
	c.Set(renewedAt.Add(25 * time.Hour))
	round()
	round()
	got := wantStates(t, r, "opened/warning")
	if got[0].Kind != certfleet.IncidentAgentStale || got[0].Agent != "lb1" || got[0].Serial != certfleet.FormatSerial(old.Serial) ||
		!strings.Contains(got[0].Summary, "agent lb1 still has serial "+certfleet.FormatSerial(old.Serial)) {
		t.Errorf("agent notification = %+v", got[0])
	}
	// The old copy runs out: critical, then expired.
	c.Set(old.NotAfter.Add(-day(2)))
	round()
	c.Set(old.NotAfter.Add(time.Hour))
	round()
	wantStates(t, r, "opened/warning", "worsened/critical", "worsened/expired")
	report(cur, c.Now())
	round()
	round()
	wantStates(t, r, "opened/warning", "worsened/critical", "worsened/expired", "resolved/expired")
}

// source is a fixed set of endpoint observations.
type source []alert.EndpointObservation

func (s *source) EndpointObservations() []alert.EndpointObservation { return *s }

// TestEndpointStale: an endpoint seen serving the replaced certificate,
// checked after the grace period, opens an incident; an observation from
// before the grace period, a failed check or no check opens none and
// resolves none; a later check serving the current one resolves it.
func TestEndpointStale(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))
	f := newFixture(t, s)
	old, _ := s.Issuance(t.Context(), mustJob(t, s, f.key).CurrentID)
	renewedAt := f.t0.Add(day(60))
	cur := f.issue(t, renewedAt)
	const ep = "tls lb1.example.org:443"
	obs := func(status string, at time.Time, iss certfleet.Issuance) alert.EndpointObservation {
		return alert.EndpointObservation{Certificate: "web", Endpoint: ep, Status: status, Message: status + " certificate",
			ServedSerial: iss.Serial, ServedNotAfter: iss.NotAfter, ServedIssuance: iss.ID, CheckedAt: at}
	}
	src := &source{obs("stale", renewedAt.Add(time.Hour), old)}
	r := newReceiver(t)
	c := &clock{now: renewedAt.Add(3 * day(1))}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Endpoints: src, Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL}}}
	round := func() {
		t.Helper()
		if _, err := e.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	round() // checked 1 h after the renewal: within the grace period
	wantStates(t, r)
	*src = source{obs("stale", renewedAt.Add(25*time.Hour), old)}
	round()
	got := wantStates(t, r, "opened/warning")
	if got[0].Kind != certfleet.IncidentEndpointStale || got[0].Endpoint != ep || got[0].Serial != certfleet.FormatSerial(old.Serial) {
		t.Errorf("endpoint notification = %+v", got[0])
	}
	for _, o := range []alert.EndpointObservation{
		obs("error", renewedAt.Add(26*time.Hour), certfleet.Issuance{}),
		{Certificate: "web", Endpoint: ep},
	} {
		*src = source{o}
		round()
	}
	*src = nil // the endpoint is no longer configured... by this instance
	e.Endpoints = nil
	round()
	wantStates(t, r, "opened/warning")
	e.Endpoints = src
	*src = source{obs("ok", renewedAt.Add(27*time.Hour), cur)}
	round()
	wantStates(t, r, "opened/warning", "resolved/warning")

	// An endpoint removed from the config resolves its incident.
	*src = source{obs("stale", renewedAt.Add(28*time.Hour), old)}
	round()
	wantStates(t, r, "opened/warning", "resolved/warning", "opened/warning")
	*src = source{{Certificate: "web", Endpoint: "tls other.example.org:443"}}
	round()
	wantStates(t, r, "opened/warning", "resolved/warning", "opened/warning", "resolved/warning")
}

// TestCommandNotifier runs a real script: it gets the JSON on stdin and the
// CERTFLEET_ALERT_* variables; a failing script keeps the notification
// owed, with its output in the error; a hanging one is killed at its
// timeout.
func TestCommandNotifier(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "notify.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
if [ -e "$0.fail" ]; then echo "pager service down" >&2; exit 3; fi
if [ -e "$0.hang" ]; then sleep 30; fi
{ env | grep -e '^CERTFLEET_ALERT_' -e '^CERTFLEET_MASTER_KEY' | sort; cat; echo; } >> "$1"
`), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CERTFLEET_MASTER_KEY", "not-for-scripts") // certfleet's own secret
	s := openSQLite(t, filepath.Join(dir, "certfleet.db"))
	f := newFixture(t, s)
	f.fail(t, "urn:ietf:params:acme:error:connection: refused; $(rm -rf /) `x` \"quoted\"")
	c := &clock{now: f.t0.Add(day(80))}
	cmd := &alert.Command{Argv: []string{script, out}, Timeout: 5 * time.Second}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now, Notifiers: []alert.Notifier{cmd}}

	// Failing first.
	if err := os.WriteFile(script+".fail", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.Round(t.Context()); err != nil || rep.Failed != 1 {
		t.Fatalf("round with a failing command = %+v, %v", rep, err)
	}
	owed, _ := s.Incidents(t.Context(), certfleet.IncidentFilter{Pending: true})
	if len(owed) != 1 || !strings.Contains(owed[0].DeliveryError, "exit status 3") || !strings.Contains(owed[0].DeliveryError, "pager service down") {
		t.Fatalf("owed after a failing command = %+v", owed)
	}
	// Hanging: killed at the timeout.
	os.Remove(script + ".fail")
	if err := os.WriteFile(script+".hang", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Timeout = 300 * time.Millisecond
	if rep, err := e.Round(t.Context()); err != nil || rep.Failed != 1 {
		t.Fatalf("round with a hanging command = %+v, %v", rep, err)
	}
	owed, _ = s.Incidents(t.Context(), certfleet.IncidentFilter{Pending: true})
	if len(owed) != 1 || !strings.Contains(owed[0].DeliveryError, "did not finish within 300ms") {
		t.Fatalf("owed after a hanging command = %+v", owed)
	}
	// Working: delivered once.
	os.Remove(script + ".hang")
	cmd.Timeout = 5 * time.Second
	for range 2 {
		if _, err := e.Round(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		"CERTFLEET_ALERT_STATE=opened\n", "CERTFLEET_ALERT_KIND=expiry\n", "CERTFLEET_ALERT_SEVERITY=warning\n",
		"CERTFLEET_ALERT_CERTIFICATE=web\n", "CERTFLEET_ALERT_KEY_TYPE=ecdsa-p256\n", "CERTFLEET_ALERT_FAILURES=1\n",
		"CERTFLEET_ALERT_NOT_AFTER=" + f.t0.Add(day(90)).Format(time.RFC3339) + "\n",
		"CERTFLEET_ALERT_LAST_ERROR=urn:ietf:params:acme:error:connection: refused; $(rm -rf /) `x` \"quoted\"\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the command did not get %q; it got:\n%s", want, text)
		}
	}
	if strings.Contains(text, "not-for-scripts") {
		t.Errorf("the command got CERTFLEET_MASTER_KEY:\n%s", text)
	}
	if strings.Count(text, "CERTFLEET_ALERT_STATE=") != 1 {
		t.Errorf("the command ran %d times, want once:\n%s", strings.Count(text, "CERTFLEET_ALERT_STATE="), text)
	}
	jsonLine := text[strings.Index(text, "{"):]
	var n alert.Notification
	if err := json.Unmarshal([]byte(strings.TrimSpace(jsonLine)), &n); err != nil || n.State != "opened" || n.Certificate != "web" {
		t.Errorf("stdin JSON = %q: %+v, %v", jsonLine, n, err)
	}
}

// TestThresholds documents the automatic thresholds.
func TestThresholds(t *testing.T) {
	var s alert.Settings
	for _, tc := range []struct {
		life                     time.Duration
		warning, critical, grace time.Duration
	}{
		{day(90), day(14), day(7), day(1)},
		{day(6), day(2), day(0.6), day(0.6)},
		{time.Hour, 20 * time.Minute, 6 * time.Minute, 6 * time.Minute},
		{day(365), day(14), day(7), day(1)},
	} {
		if w, c, g := s.Warning(tc.life), s.Critical(tc.life), s.Grace(tc.life); w != tc.warning || c != tc.critical || g != tc.grace {
			t.Errorf("lifetime %v: warning %v, critical %v, grace %v; want %v, %v, %v", tc.life, w, c, g, tc.warning, tc.critical, tc.grace)
		}
	}
	set := alert.Settings{ExpiryWarning: day(30), ExpiryCritical: day(3), StaleGrace: time.Hour}
	if set.Warning(day(90)) != day(30) || set.Critical(day(90)) != day(3) || set.Grace(day(90)) != time.Hour {
		t.Errorf("configured thresholds not used: %+v", set)
	}
}

func mustJob(t *testing.T, s certfleet.Store, key certfleet.JobKey) certfleet.Job {
	t.Helper()
	j, err := s.Job(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
