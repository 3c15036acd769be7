package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestRateLimitBudgetCLI: a configured budget of 3 certificates per
// registered domain per week, 6 certificates under one domain: `issue`
// gets 3 and says why and until when the other 3 wait (exit 0: a deferral
// is no failure), Pebble saw 3 orders, and `status` shows the deferrals
// with their reason and time.
func TestRateLimitBudgetCLI(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	var certs strings.Builder
	fmt.Fprintf(&certs, "[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n", ca.DirectoryURL())
	for i := range 6 {
		fmt.Fprintf(&certs, "[[certificate]]\nname = \"n%d\"\nidentifiers = [\"n%d.example.org\"]\n", i, i)
	}
	path := daemontest.WriteConfig(t, dir, ca, port, certs.String())
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
	// Status shows each waiting job's place in the budget's queue (issue
	// 13) and, in NEXT CHECK, its turn.
	_, out, _ = runCLI(t, "status", "-config", path)
	if strings.Count(out, "deferred (pending)") != 3 {
		t.Fatalf("status does not show the deferrals:\n%s", out)
	}
	for place := 1; place <= 3; place++ {
		if want := fmt.Sprintf("waiting for budget certificates for registered domain example.org: place %d, turn at ", place); !strings.Contains(out, want) {
			t.Fatalf("status does not show %q:\n%s", want, out)
		}
	}
	// Running again places no order: the deferred ones are not due.
	if code, out, _ := runCLI(t, "issue", "-config", path); code != 0 || ca.NewOrders() != 3 || !strings.Contains(out, "nothing due") {
		t.Fatalf("second run: exit %d, CA orders %d\n%s", code, ca.NewOrders(), out)
	}
}

// TestRateLimitTableForNoCAWarns: a [rate_limits] table whose directory no
// account uses (here a trailing slash) limits nothing; the start says so
// instead of ignoring it silently, and the real CA's table stays quiet.
func TestRateLimitTableForNoCAWarns(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf("[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n[rate_limits.%q]\ncertificates_per_domain = \"3/7d\"\n",
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
