package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

func TestReload(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	one := "[[certificate]]\nname = \"one\"\nidentifiers = [\"one.certfleet.test\"]\n"
	path := daemontest.WriteConfig(t, dir, ca, port, one)
	_, d := mustOpenDaemon(t, path, daemon.Options{StartResponders: true})
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("first pass: %+v, %v", rep, err)
	}

	// A second certificate, and a new output directory for the first:
	// applied live (the files of "one" are written there at once).
	moved := filepath.Join(dir, "moved")
	two := one + fmt.Sprintf("output_dir = %q\n", moved) +
		"[[certificate]]\nname = \"two\"\nidentifiers = [\"two.certfleet.test\"]\n"
	next := mustRewrite(t, dir, ca, port, two)
	if err := d.Reload(t.Context(), next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 || rep.Results[0].Key.Spec != "two" {
		t.Fatalf("after reload: %+v, %v; want only two issued", rep.Results, err)
	}
	if _, err := os.Stat(filepath.Join(moved, "fullchain.pem")); err != nil {
		t.Errorf("the new output_dir of \"one\" was not written after the reload: %v", err)
	}

	// A change that needs a restart is refused and changes nothing.
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), "[ca]\n", "[ca]\nemail = \"new@certfleet.test\"\n", 1)+"[[certificate]]\nname = \"three\"\nidentifiers = [\"three.certfleet.test\"]\n"), 0o600)
	bad := mustLoad(t, path)
	if err := d.Reload(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "[ca] or [accounts]") {
		t.Fatalf("reload with an account change: %v; want it refused, naming [ca]", err)
	}
	if _, ok := d.CurrentConfig().Certificate("three"); ok {
		t.Fatal("a refused reload changed the configuration in force")
	}
}

// TestReloadRefusesMetricsChange: a new [metrics] listen needs a listener
// the running daemon does not have, so a reload says to restart.
func TestReloadRefusesMetricsChange(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	one := "[[certificate]]\nname = \"one\"\nidentifiers = [\"one.certfleet.test\"]\n"
	path := daemontest.WriteConfig(t, dir, ca, port, one)
	_, d := mustOpenDaemon(t, path, daemon.Options{})
	next := mustRewrite(t, dir, ca, port, one+"[metrics]\nlisten = \"127.0.0.1:9464\"\n")
	if err := d.Reload(t.Context(), next); err == nil || !strings.Contains(err.Error(), "[metrics]") || !strings.Contains(err.Error(), "restart") {
		t.Errorf("reload with a new [metrics] listen: %v, want a refusal naming [metrics] and restart", err)
	}
	if d.CurrentConfig().Metrics.Listen != "" {
		t.Errorf("the refused [metrics] is in force")
	}
}

// TestReloadForgetsRemovedEndpoint: an endpoint seen serving an old
// certificate is a readiness violation until it serves the current one; once
// a reload removes it from the config, the violation goes (it stayed until
// the next renewal).
func TestReloadForgetsRemovedEndpoint(t *testing.T) {
	port := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port,
		Profiles: map[string]pebbleca.Profile{"short": {Description: "20 s", ValidityPeriod: 20 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	dir := t.TempDir()
	web := "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\nprofile = \"short\"\n"
	path := daemontest.WriteConfig(t, dir, ca, port, web+"endpoints = [\"127.0.0.1:1\"]\n")
	cfg, d := mustOpenDaemon(t, path, daemon.Options{StartResponders: true, Instance: "reload-endpoint-test"})
	if d.Metrics == nil {
		t.Fatal("no metrics")
	}
	if rep, err := d.Manager.RunOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("issue: %+v, %v", rep, err)
	}
	cur := daemontest.Current(t, d, "web")
	c, _ := cfg.Certificate("web")
	// What the endpoint watcher feeds: a check 3 s after issuance (the
	// limit of a 20 s certificate is 2 s) that saw another certificate.
	d.ObserveEndpoint(cfg, endpoint.Finding{Certificate: "web", Target: daemon.EndpointTargets(c)[0],
		Verdict: endpoint.Verdict{Status: endpoint.StatusStale, ServedSerial: "01", WantSerial: cur.Serial}}, cur.IssuedAt.Add(3*time.Second))
	if vs, err := d.Metrics.CheckReadiness(t.Context()); err != nil || len(vs) != 1 || vs[0].Source != certfleet.ReadinessEndpointReload {
		t.Fatalf("before the reload: %+v, %v; want one endpoint_reload violation", vs, err)
	}

	next := mustRewrite(t, dir, ca, port, web)
	if err := d.Reload(t.Context(), next); err != nil {
		t.Fatalf("reload without the endpoint: %v", err)
	}
	if vs, err := d.Metrics.CheckReadiness(t.Context()); err != nil || len(vs) != 0 {
		t.Errorf("after the endpoint was removed: %+v, %v; want no violation", vs, err)
	}
}

// TestReloadRefusesStartupSections: the rate-limit budgets, the dns-01
// solver and its journal directory are built once at the start, so a
// reload that changes [rate_limits], [dns01] or state_dir says to restart
// (naming the section) and keeps the running configuration, instead of
// reporting "reloaded" while the old settings stay in force.
func TestReloadRefusesStartupSections(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	one := "[[certificate]]\nname = \"one\"\nidentifiers = [\"one.certfleet.test\"]\n"
	path := daemontest.WriteConfig(t, dir, ca, port, one)
	// With its responder running, so that nothing else needs a restart.
	cfg, d := mustOpenDaemon(t, path, daemon.Options{StartResponders: true, Instance: "reload-test"})
	two := one + "[[certificate]]\nname = \"two\"\nidentifiers = [\"two.certfleet.test\"]\n"
	next := mustRewrite(t, dir, ca, port, two)
	if err := d.Reload(t.Context(), next); err != nil {
		t.Fatalf("reload adding a certificate: %v", err)
	}
	cfg = next
	for _, tc := range []struct {
		name, section, top, tables string
	}{
		{name: "rate limits", section: "[rate_limits]", tables: fmt.Sprintf("[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n", ca.DirectoryURL())},
		{name: "dns01", section: "[dns01]", tables: "[dns01]\npropagation_timeout = \"3m\"\n"},
		{name: "state dir", section: "state_dir", top: fmt.Sprintf("state_dir = %q\n", filepath.Join(dir, "elsewhere"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			daemontest.WriteConfig(t, dir, ca, port, two+tc.tables)
			if tc.top != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append([]byte(tc.top), b...), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			next, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			err = d.Reload(t.Context(), next)
			if err == nil || !strings.Contains(err.Error(), tc.section) || !strings.Contains(err.Error(), "restart") {
				t.Errorf("reload changing %s: %v, want a refusal naming it and restart", tc.section, err)
			}
			if d.CurrentConfig() != cfg {
				t.Errorf("the refused configuration is in force")
			}
		})
	}
}

// TestReloadRefusesAPIAndNamesSections (issue 15, finding 8): a new [api]
// listen was "reloaded" but not applied (the API's listeners are set up at
// the start); now it is refused, naming [api], and the refusal names the
// sections as they are written ([http01], not [[http01]]). A reload whose
// outputs cannot be written on this host (an owner that does not exist)
// is refused with the file and line.
func TestReloadRefusesAPIAndNamesSections(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	one := "[[certificate]]\nname = \"one\"\nidentifiers = [\"one.certfleet.test\"]\n"
	path := daemontest.WriteConfig(t, dir, ca, port, one+"[api]\nlisten = \"127.0.0.1:18555\"\n")
	_, d := mustOpenDaemon(t, path, daemon.Options{StartResponders: true})
	next := mustRewrite(t, dir, ca, daemontest.FreePort(t), one+"[api]\nlisten = \"127.0.0.1:18556\"\n")
	err := d.Reload(t.Context(), next)
	if err == nil || !strings.Contains(err.Error(), "changes to [http01], [api] need a restart") || strings.Contains(err.Error(), "[[") {
		t.Errorf("reload with a new [api] listen and [http01] port: %v; want a refusal naming [http01], [api]", err)
	}
	if d.CurrentConfig().API.Listen != "127.0.0.1:18555" {
		t.Errorf("the refused [api] listen is in force: %q", d.CurrentConfig().API.Listen)
	}

	next = mustRewrite(t, dir, ca, port, one+"owner = \"certfleet-no-such-user\"\n[api]\nlisten = \"127.0.0.1:18555\"\n")
	err = d.Reload(t.Context(), next)
	if err == nil || !strings.Contains(err.Error(), "certfleet.toml:") || !strings.Contains(err.Error(), `user "certfleet-no-such-user" does not exist`) {
		t.Errorf("reload with an owner that does not exist: %v; want a refusal with file:line", err)
	}
}

// mustLoad loads the config file at path.
func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mustRewrite writes the config file again (daemontest.WriteConfig, in
// dir) with certs and loads it.
func mustRewrite(t *testing.T, dir string, ca *pebbleca.CA, httpPort int, certs string) *config.Config {
	t.Helper()
	return mustLoad(t, daemontest.WriteConfig(t, dir, ca, httpPort, certs))
}

// mustOpenDaemon opens a daemon with opts on the config file at path,
// closed when t ends, and returns the config it runs with.
func mustOpenDaemon(t *testing.T, path string, opts daemon.Options) (*config.Config, *daemon.Daemon) {
	t.Helper()
	cfg := mustLoad(t, path)
	d, err := daemon.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return cfg, d
}
