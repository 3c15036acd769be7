package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
)

// TestRateLimitBudgetCLI: a configured budget of 3 certificates per
// registered domain per week, 6 certificates under one domain: `issue`
// gets 3 and says why and until when the other 3 wait (exit 0: a deferral
// is no failure), Pebble saw 3 orders, and `status` shows the deferrals
// with their reason and time.
func TestRateLimitBudgetCLI(t *testing.T) {
	ca, port := newTestCA(t)
	dir := t.TempDir()
	var certs strings.Builder
	fmt.Fprintf(&certs, "[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n", ca.DirectoryURL())
	for i := range 6 {
		fmt.Fprintf(&certs, "[[certificate]]\nname = \"n%d\"\nidentifiers = [\"n%d.example.org\"]\n", i, i)
	}
	path := writeConfig(t, dir, ca, port, certs.String())
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	if strings.Count(out, "issued   n") != 3 || strings.Count(out, "DEFERRED n") != 3 ||
		!strings.Contains(out, "certificates for registered domain example.org, 3 of 3 used in the last 7d") ||
		!strings.Contains(out, "3 issued, 0 failed, 3 deferred by rate-limit budgets") {
		t.Fatalf("issue output:\n%s", out)
	}
	if n := ca.NewOrders(); n != 3 {
		t.Fatalf("the CA saw %d orders, want 3", n)
	}
	_, out, _ = runCLI(t, "status", "-config", path)
	if strings.Count(out, "deferred (pending)") != 3 || !strings.Contains(out, "rate-limit budget of "+ca.DirectoryURL()+" exhausted") {
		t.Fatalf("status does not show the deferrals:\n%s", out)
	}
	// Running again places no order: the deferred ones are not due.
	if code, out, _ := runCLI(t, "issue", "-config", path); code != 0 || ca.NewOrders() != 3 || !strings.Contains(out, "nothing due") {
		t.Fatalf("second run: exit %d, CA orders %d\n%s", code, ca.NewOrders(), out)
	}
}

// TestStatusShowsCAHold: a rateLimited answer held in the store is listed
// by status with the account, the CA, until when and what the CA said.
func TestStatusShowsCAHold(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := store.SetRateHold(t.Context(), certfleet.RateHold{CA: "https://acme-v02.api.letsencrypt.org/directory",
		Account: "customer1", Until: now.Add(time.Hour), SetAt: now, Reason: "too many new orders (300) from this account"}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := printStatus(t.Context(), &b, store, false, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CA rate limits in force", "customer1", "https://acme-v02.api.letsencrypt.org/directory",
		"2026-05-01 11:00:00Z", "too many new orders (300)"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("status lacks %q:\n%s", want, b.String())
		}
	}
	// Once it has passed it is no longer shown.
	b.Reset()
	if err := printStatus(t.Context(), &b, store, false, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "customer1") {
		t.Fatalf("an expired hold is shown:\n%s", b.String())
	}
}

// TestReloadRefusesStartupSections: the rate-limit budgets, the dns-01
// solver and its journal directory are built once at the start, so a
// reload that changes [rate_limits], [dns01] or state_dir says to restart
// (naming the section) and keeps the running configuration, instead of
// reporting "reloaded" while the old settings stay in force.
func TestReloadRefusesStartupSections(t *testing.T) {
	ca, port := newTestCA(t)
	dir := t.TempDir()
	one := "[[certificate]]\nname = \"one\"\nidentifiers = [\"one.certfleet.test\"]\n"
	path := writeConfig(t, dir, ca, port, one)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	// With its responder running, so that nothing else needs a restart.
	d, err := OpenDaemon(t.Context(), cfg, DaemonOptions{StartResponders: true, Instance: "reload-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	two := one + "[[certificate]]\nname = \"two\"\nidentifiers = [\"two.certfleet.test\"]\n"
	writeConfig(t, dir, ca, port, two)
	next, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
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
			writeConfig(t, dir, ca, port, two+tc.tables)
			if tc.top != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append([]byte(tc.top), b...), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			next, err := loadConfig(path)
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

// TestRateLimitTableForNoCAWarns: a [rate_limits] table whose directory no
// account uses (here a trailing slash) limits nothing; the start says so
// instead of ignoring it silently, and the real CA's table stays quiet.
func TestRateLimitTableForNoCAWarns(t *testing.T) {
	ca, port := newTestCA(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, ca, port, fmt.Sprintf("[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n",
		ca.DirectoryURL()+"/", ca.DirectoryURL()))
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "matches no account's CA directory") || !strings.Contains(errOut, ca.DirectoryURL()+"/") ||
		strings.Count(errOut, "matches no account's CA directory") != 1 {
		t.Fatalf("want one warning naming %s/:\n%s", ca.DirectoryURL(), errOut)
	}
}
