package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/metricstest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// TestServeMetricsAndReadiness runs the daemon (serve) against Pebble with
// a short-lived profile (60 s certificates: a tenth is 6 s): one
// certificate issues, one fails validation for real. The counters move on
// both listeners' /metrics (the API's needs a token), an agent whose last
// check-in is 30 s old is a readiness violation in the metrics, in the log
// (once) and in `certfleet status`.
func TestServeMetricsAndReadiness(t *testing.T) {
	port := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port,
		Profiles: map[string]pebbleca.Profile{"short": {Description: "60 s", ValidityPeriod: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
profile = "short"
[[certificate]]
name = "bad"
identifiers = ["bad.certfleet.test"]
profile = "short"
challenge = "webroot"
webroot = %q
[metrics]
readiness_interval = "1s"
`, t.TempDir()))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &daemontest.SyncBuffer{}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	apiAddr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{Listener: issuetest.Listen(t)})
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr, err := d.StartMetrics(t.Context(), issuetest.Listen(t))
	if err != nil || metricsAddr == "" {
		t.Fatalf("StartMetrics = %q, %v", metricsAddr, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	defer func() { cancel(); <-served }()

	open := "http://" + metricsAddr + "/metrics"
	var f metricstest.Families
	deadline := time.Now().Add(90 * time.Second)
	for {
		f = metricstest.MustScrape(t, open)
		issued, _ := f.Value("certfleet_renewal_attempts_total", "outcome", "issued")
		failed, _ := f.Value("certfleet_renewal_attempts_total", "outcome", "failed")
		deployed, _ := f.Value("certfleet_deploys_total", "outcome", "ok") // counted after the files are written
		if issued >= 1 && failed >= 1 && deployed >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no issuance and failure after 90 s:\n%s\nlog:\n%s", f.String("certfleet_renewal_attempts_total"), lastLines(logs.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"certfleet_renewal_failures_total", []string{"reason", "unauthorized"}},
		{"certfleet_challenges_total", []string{"type", "http-01", "outcome", "valid"}},
		{"certfleet_challenges_total", []string{"type", "http-01", "outcome", "invalid"}},
		{"certfleet_acme_request_duration_seconds", []string{"endpoint", "newOrder"}},
		{"certfleet_acme_request_duration_seconds", []string{"endpoint", "finalize"}},
		{"certfleet_certificate_not_after_timestamp_seconds", []string{"certificate", "web", "key_type", "ecdsa-p256"}},
		{"certfleet_deploys_total", []string{"outcome", "ok"}},
	} {
		if v, _ := f.Value(c.name, c.labels...); v < 1 {
			t.Errorf("%s%v = %v, want at least 1; series:\n%s", c.name, c.labels, v, f.String(c.name))
		}
	}

	// The API listener serves /metrics to a read-certs token for all
	// names only.
	store, err := daemon.APIStore(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := daemon.CreateToken(t.Context(), store, "prometheus", []string{"*"}, []certfleet.Permission{certfleet.PermReadCerts}, false)
	if err != nil {
		t.Fatal(err)
	}
	api := "http://" + apiAddr + "/metrics"
	if _, status, _ := metricstest.Scrape(api); status != http.StatusUnauthorized {
		t.Errorf("API /metrics without a token: %d, want 401", status)
	}
	fa := metricstest.MustScrape(t, api, "Authorization", "Bearer "+secret)
	if v, _ := fa.Value("certfleet_renewal_attempts_total", "outcome", "issued"); v < 1 {
		t.Errorf("API /metrics: no issuance counted")
	}
	// The API itself still answers beside it.
	if resp, err := http.Get("http://" + apiAddr + "/v1/openapi.json"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/openapi.json next to /metrics: %v %v", resp, err)
	}

	// An agent last seen 30 s ago: its check-in interval is too long for
	// a 60 s certificate.
	fs := d.Store.(certfleet.FleetStore)
	if err := fs.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "lb-slow", Certificate: "web", KeyType: certfleet.ECDSAP256,
		ReportedAt: time.Now().Add(-30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	f = metricstest.MustScrape(t, open)
	if v, ok := f.Value("certfleet_readiness_violation", "certificate", "web", "source", certfleet.ReadinessAgentCheckin, "subject", "lb-slow"); !ok || v != 1 {
		t.Errorf("no check-in violation for lb-slow:\n%s", f.String("certfleet_readiness_violation"))
	}
	time.Sleep(2500 * time.Millisecond) // two readiness_interval ticks: still logged once
	if n := strings.Count(logs.String(), "source=agent_checkin subject=lb-slow"); n != 1 {
		t.Errorf("violation logged %d times, want once; log:\n%s", n, lastLines(logs.String(), 30))
	}

	code, out, errOut := runCLI(t, "status", "-config", path)
	if code != 0 || !strings.Contains(out, "READINESS") || !strings.Contains(out, "agent lb-slow checks in every") ||
		!strings.Contains(out, "1/10 of the certificate's") {
		t.Errorf("status exit %d does not warn about lb-slow:\n%s%s", code, out, errOut)
	}
}

// TestStatusWithoutReadinessProblems: no warning section when every agent
// is in time.
func TestStatusWithoutReadinessProblems(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\n")
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s%s", code, out, errOut)
	}
	st := openForTest(t, filepath.Join(dir, "state.db"), "")
	jobs, err := st.Jobs(t.Context(), certfleet.JobFilter{Spec: "web"})
	if err != nil || len(jobs) != 1 {
		t.Fatal(jobs, err)
	}
	iss, err := st.Issuance(t.Context(), jobs[0].CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.(certfleet.FleetStore).PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "lb1", Certificate: "web",
		KeyType: certfleet.ECDSAP256, Serial: iss.Serial, Fingerprint: iss.Fingerprint, InstalledAt: iss.IssuedAt.Add(time.Second),
		ReportedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errOut := runCLI(t, "status", "-config", path)
	if code != 0 || strings.Contains(out, "READINESS") || !strings.Contains(out, "lb1") {
		t.Errorf("status exit %d:\n%s%s", code, out, errOut)
	}
}

// TestStatusEndpointReloadLag: an endpoint that still serves the replaced
// certificate more than a tenth of the new one's lifetime after issuance
// (20 s certificates: 2 s) is a readiness warning in `status -endpoints`.
func TestStatusEndpointReloadLag(t *testing.T) {
	port := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port,
		Profiles: map[string]pebbleca.Profile{"short": {Description: "20 s", ValidityPeriod: 20 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	dir := t.TempDir()
	stale := issuetest.Listen(t)
	eps := fmt.Sprintf("endpoints = [%q]\nprofile = \"short\"\n", stale.Addr().String())
	path := daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\n"+eps)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: %d\n%s\n%s", code, out, errOut)
	}
	live := filepath.Join(dir, "live", "web")
	old, err := tls.LoadX509KeyPair(filepath.Join(live, "fullchain.pem"), filepath.Join(live, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	serveTLS(t, stale, old)
	// A second name re-issues the certificate; the endpoint keeps the old.
	path = daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\", \"www.certfleet.test\"]\n"+eps)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 || !strings.Contains(out, "issued") {
		t.Fatalf("re-issue: %d\n%s\n%s", code, out, errOut)
	}
	issued := time.Now()

	// Within the limit: no warning yet (the endpoint is stale all the
	// same, so status exits 1).
	code, out, _ := runCLI(t, "status", "-config", path, "-endpoints")
	if code != 1 || time.Since(issued) < time.Second && strings.Contains(out, "READINESS") {
		t.Fatalf("status right after issuance: exit %d\n%s", code, out)
	}
	time.Sleep(time.Until(issued.Add(2500 * time.Millisecond)))
	code, out, errOut := runCLI(t, "status", "-config", path, "-endpoints")
	want := "endpoint tls " + stale.Addr().String()
	if code != 1 || !strings.Contains(out, "READINESS") || !strings.Contains(out, want) || !strings.Contains(out, "still served an older certificate") {
		t.Errorf("status -endpoints exit %d does not warn about %s:\n%s%s", code, want, out, errOut)
	}
	// Without -endpoints status does not connect, so it cannot know.
	if _, out, _ := runCLI(t, "status", "-config", path); strings.Contains(out, want) {
		t.Errorf("status without -endpoints warns about the endpoint:\n%s", out)
	}
}
