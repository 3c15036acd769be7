package metrics_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/metricstest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/solver/webroot"
	"github.com/certfleet/certfleet/sqlite"
)

func TestMain(m *testing.M) { issuetest.Main(m) }

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a manager and an issuer against an in-process Pebble, with a real
// http-01 responder, a SQLite store and the metrics wired as in the daemon.
type env struct {
	ca      *pebbleca.CA
	store   *sqlite.Store
	metrics *metrics.Metrics
	mgr     *manager.Manager
	url     string // the metrics endpoint
	log     *syncBuffer
}

func newTestEnv(t *testing.T, profiles map[string]pebbleca.Profile) *env {
	t.Helper()
	store := issuetest.OpenSQLite(t)
	ca, http01Solver := issuetest.StartCA(t, pebbleca.Config{Profiles: profiles}, store)

	log := &syncBuffer{}
	m := metrics.New(metrics.Options{Store: store, Fleet: store, Logger: slog.New(slog.NewTextHandler(log, nil))})
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL:    ca.DirectoryURL(),
		TrustedRootsPEM: ca.TLSRootPEM(),
		Accounts:        store,
		PollInterval:    50 * time.Millisecond,
		Observer:        m,
		Solvers: map[certfleet.ChallengeType]certfleet.Solver{
			certfleet.ChallengeHTTP01: http01Solver,
			// A web root nobody serves: validation through it fails for real.
			certfleet.ChallengeWebroot: &webroot.Solver{Dir: t.TempDir()},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mgr := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Events: m, Concurrency: 4, Rand: func() float64 { return 0 }}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return &env{ca: ca, store: store, metrics: m, mgr: mgr, url: srv.URL + "/metrics", log: log}
}

func spec(name, challenge, profile string) certfleet.CertificateSpec {
	return certfleet.CertificateSpec{
		Name:        name,
		Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: name + ".certfleet.test"}},
		KeyTypes:    []certfleet.KeyType{certfleet.ECDSAP256},
		Challenge:   certfleet.ChallengeType(challenge),
		Profile:     profile,
		Source:      certfleet.SourceConfig,
	}
}

// TestMetricsFromRealIssuance issues one certificate and fails one
// validation against Pebble, scrapes /metrics over HTTP, parses the
// exposition and checks every family the issue asks for moved as it should.
func TestMetricsFromRealIssuance(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()

	before := metricstest.MustScrape(t, e.url)
	if v, ok := before.Value("certfleet_jobs"); !ok || v != 0 {
		t.Fatalf("empty store: certfleet_jobs = %v (%v), want 0", v, ok)
	}
	if _, ok := before.Value("certfleet_renewal_attempts_total"); ok {
		t.Fatalf("attempts counted before any attempt:\n%s", before.String("certfleet_renewal_attempts_total"))
	}

	if _, err := e.store.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{
		spec("good", "http-01", ""), spec("bad", "webroot", ""),
	}); err != nil {
		t.Fatal(err)
	}
	queued := metricstest.MustScrape(t, e.url)
	if v, _ := queued.Value("certfleet_jobs_due"); v != 2 {
		t.Errorf("before the pass: certfleet_jobs_due = %v, want 2", v)
	}

	rep, err := e.mgr.RunOnce(ctx)
	if err != nil || rep.Issued != 1 || rep.Failed != 1 {
		t.Fatalf("RunOnce = issued %d, failed %d, %v; want 1 and 1", rep.Issued, rep.Failed, err)
	}
	f := metricstest.MustScrape(t, e.url)

	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"certfleet_renewal_attempts_total", []string{"outcome", "issued"}, 1},
		{"certfleet_renewal_attempts_total", []string{"outcome", "failed"}, 1},
		{"certfleet_renewal_failures_total", []string{"reason", "unauthorized"}, 1},
		{"certfleet_events_total", []string{"kind", certfleet.EventIssued}, 1},
		{"certfleet_events_total", []string{"kind", certfleet.EventOrderFailed}, 1},
		{"certfleet_challenges_total", []string{"type", "http-01", "outcome", "valid"}, 1},
		{"certfleet_challenges_total", []string{"type", "http-01", "outcome", "invalid"}, 1},
		{"certfleet_jobs", nil, 2},
		{"certfleet_jobs_due", nil, 0},
		{"certfleet_jobs_failing", nil, 1},
		{"certfleet_leases", []string{"state", "held"}, 0},
		{"certfleet_leases", []string{"state", "expired"}, 0},
		// Two orders; the nonce rejections of Pebble may add retries, so
		// observations are counted by status.
		{"certfleet_acme_request_duration_seconds", []string{"endpoint", "newOrder", "status", "201"}, 2},
		{"certfleet_acme_request_duration_seconds", []string{"endpoint", "finalize", "status", "200"}, 1},
		{"certfleet_acme_request_duration_seconds", []string{"endpoint", "challenge", "status", "200"}, 2},
		{"certfleet_acme_request_duration_seconds", []string{"endpoint", "cert", "status", "200"}, 1},
	}
	for _, c := range checks {
		got, _ := f.Value(c.name, c.labels...)
		if got != c.want {
			t.Errorf("%s%v = %v, want %v; series:\n%s", c.name, c.labels, got, c.want, f.String(c.name))
		}
	}
	if cas := f.LabelValues("certfleet_acme_request_duration_seconds", "ca"); len(cas) != 1 || cas[0] != e.ca.DirectoryURL() {
		t.Errorf("ca labels = %v, want [%s]", cas, e.ca.DirectoryURL())
	}
	for _, ep := range []string{"directory", "newNonce", "newAccount", "authz", "order"} {
		if v, _ := f.Value("certfleet_acme_request_duration_seconds", "endpoint", ep); v < 1 {
			t.Errorf("no %s request observed; endpoints: %v", ep, f.LabelValues("certfleet_acme_request_duration_seconds", "endpoint"))
		}
	}
	// A histogram with a real latency: the sum is positive.
	for _, m := range f.Find("certfleet_acme_request_duration_seconds", "endpoint", "finalize") {
		if m.Histogram.GetSampleSum() <= 0 {
			t.Errorf("finalize latency sum %v, want > 0", m.Histogram.GetSampleSum())
		}
	}

	// Expiry of the issued certificate, as the archive has it.
	jobs, err := e.store.Jobs(ctx, certfleet.JobFilter{Spec: "good"})
	if err != nil || len(jobs) != 1 || jobs[0].CurrentID == 0 {
		t.Fatalf("job of good: %+v, %v", jobs, err)
	}
	iss, err := e.store.Issuance(ctx, jobs[0].CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := f.Value("certfleet_certificate_not_after_timestamp_seconds", "certificate", "good", "key_type", "ecdsa-p256")
	if !ok || int64(na) != iss.NotAfter.Unix() {
		t.Errorf("not_after = %v (%v), want %d", na, ok, iss.NotAfter.Unix())
	}
	nb, _ := f.Value("certfleet_certificate_not_before_timestamp_seconds", "certificate", "good")
	if int64(nb) != iss.NotBefore.Unix() {
		t.Errorf("not_before = %v, want %d", nb, iss.NotBefore.Unix())
	}
	if _, ok := f.Value("certfleet_certificate_not_after_timestamp_seconds", "certificate", "bad"); ok {
		t.Errorf("a certificate that was never issued has an expiry metric")
	}
	// The registry is ours, with the process collectors.
	if _, ok := f["go_goroutines"]; !ok {
		t.Errorf("no go_goroutines: the runtime collector is not registered")
	}
}

// TestAgentMetricsAndReadiness: an agent's report of a certificate from a
// short-lived Pebble profile (60 s: a tenth is 6 s) whose check-in interval
// is too long is a readiness violation in the metrics and in the log, logged
// once; the agent's check-ins are counted and its last one exposed.
func TestAgentMetricsAndReadiness(t *testing.T) {
	e := newTestEnv(t, map[string]pebbleca.Profile{"short": {Description: "60 s", ValidityPeriod: time.Minute}})
	ctx := t.Context()
	if _, err := e.store.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{spec("web", "http-01", "short")}); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.mgr.RunOnce(ctx); err != nil || rep.Issued != 1 {
		t.Fatalf("RunOnce: issued %d, %v", rep.Issued, err)
	}
	jobs, _ := e.store.Jobs(ctx, certfleet.JobFilter{Spec: "web"})
	iss, err := e.store.Issuance(ctx, jobs[0].CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	if lt := iss.NotAfter.Sub(iss.NotBefore); lt > 2*time.Minute {
		t.Fatalf("lifetime %s: the short profile was not used", lt)
	}

	// lb1 installed it at once and checked in now: ready. lb2 checked in
	// 20 s ago with the previous certificate, and last before that a
	// minute earlier.
	now := time.Now()
	put := func(r certfleet.AgentReport) {
		t.Helper()
		if err := e.store.PutAgentReport(ctx, r); err != nil {
			t.Fatal(err)
		}
		e.metrics.AgentCheckin(r)
	}
	put(certfleet.AgentReport{Agent: "lb1", Certificate: "web", KeyType: certfleet.ECDSAP256, Serial: iss.Serial,
		Fingerprint: iss.Fingerprint, InstalledAt: iss.IssuedAt.Add(time.Second), ReportedAt: now})
	put(certfleet.AgentReport{Agent: "lb2", Certificate: "web", KeyType: certfleet.ECDSAP256, Serial: "01",
		Fingerprint: "old", ReportedAt: now.Add(-80 * time.Second)})
	f := metricstest.MustScrape(t, e.url)
	put(certfleet.AgentReport{Agent: "lb2", Certificate: "web", KeyType: certfleet.ECDSAP256, Serial: "01",
		Fingerprint: "old", ReportedAt: now.Add(-20 * time.Second)})
	f = metricstest.MustScrape(t, e.url)

	if v, _ := f.Value("certfleet_agent_checkins_total", "agent", "lb2"); v != 2 {
		t.Errorf("lb2 check-ins = %v, want 2", v)
	}
	if v, _ := f.Value("certfleet_agent_last_checkin_timestamp_seconds", "agent", "lb1"); int64(v) != now.Unix() {
		t.Errorf("lb1 last check-in = %v, want %d", v, now.Unix())
	}
	if v, ok := f.Value("certfleet_readiness_violation", "certificate", "web", "source", certfleet.ReadinessAgentCheckin, "subject", "lb2"); !ok || v != 1 {
		t.Errorf("no check-in violation for lb2; violations:\n%s", f.String("certfleet_readiness_violation"))
	}
	if _, ok := f.Value("certfleet_readiness_violation", "subject", "lb1", "source", certfleet.ReadinessAgentCheckin); ok {
		t.Errorf("lb1 (checked in now) flagged:\n%s", f.String("certfleet_readiness_violation"))
	}

	// An endpoint seen serving the old certificate 10 s after issuance
	// (more than 6 s) lags; one that served the new one does not.
	e.metrics.ObserveEndpoint("web", certfleet.ECDSAP256, "tls://slow:443", "01", false, iss.IssuedAt.Add(10*time.Second))
	e.metrics.ObserveEndpoint("web", certfleet.ECDSAP256, "tls://fast:443", iss.Serial, true, iss.IssuedAt.Add(time.Second))
	f = metricstest.MustScrape(t, e.url)
	if _, ok := f.Value("certfleet_readiness_violation", "source", certfleet.ReadinessEndpointReload, "subject", "tls://slow:443"); !ok {
		t.Errorf("slow endpoint not flagged:\n%s", f.String("certfleet_readiness_violation"))
	}
	if _, ok := f.Value("certfleet_readiness_violation", "subject", "tls://fast:443"); ok {
		t.Errorf("fast endpoint flagged:\n%s", f.String("certfleet_readiness_violation"))
	}
	if _, err := e.metrics.CheckReadiness(ctx); err != nil {
		t.Fatal(err)
	}
	// Logged once, though evaluated at four scrapes and a check.
	if n := strings.Count(e.log.String(), `source=agent_checkin subject=lb2 `); n != 1 {
		t.Errorf("lb2's check-in violation logged %d times, want once:\n%s", n, e.log.String())
	}
	if !strings.Contains(e.log.String(), "tls://slow:443") {
		t.Errorf("endpoint violation not logged:\n%s", e.log.String())
	}
}
