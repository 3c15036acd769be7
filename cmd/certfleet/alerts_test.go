package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// TestIssueRunsAlerts: cron users, who run `certfleet issue` instead of
// serve, get alerts too. A certificate whose renewal starts failing for real
// (a name added, validated through a web root nobody serves) is within the warning
// time: the issue run that fails opens the incident and notifies once; the
// next run sends nothing more.
func TestIssueRunsAlerts(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	recv := daemontest.NewAlertReceiver(t)
	path := daemontest.WriteConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+daemontest.AlertsSection(t, dir, recv, "expiry_warning = \"400d\"\n"))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	if n := recv.Notifications(); len(n) != 0 {
		t.Fatalf("a healthy certificate notified: %+v", n)
	}
	daemontest.BreakWebRenewal(t, path)
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(out, "alerts: 1 opened") || !strings.Contains(out, "1 notification(s) sent") {
		t.Fatalf("failing issue: exit %d, want 1 and the alert round's line\n%s%s", code, out, errOut)
	}
	got := recv.Want(t, "opened/warning")
	if got[0].Certificate != "web" || got[0].Failures != 1 {
		t.Errorf("notification = %+v", got[0])
	}
	if code, out, errOut = runCLI(t, "issue", "-config", path); !strings.Contains(out, "nothing due now") || strings.Contains(out, "1 notification(s) sent") {
		t.Fatalf("second run notified again: exit %d\n%s%s", code, out, errOut)
	}
	recv.Want(t, "opened/warning")
}

// TestIssueAlertDeliveryFails: when the webhook is down, issue still prints
// the pass's failure summary and adds that the notification stays owed.
func TestIssueAlertDeliveryFails(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	recv := daemontest.NewAlertReceiver(t)
	path := daemontest.WriteConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+daemontest.AlertsSection(t, dir, recv, "expiry_warning = \"400d\"\n"))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	recv.Close() // the webhook goes down
	daemontest.BreakWebRenewal(t, path)
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(errOut, "1 certificate(s) failed") || !strings.Contains(errOut, "1 alert notification(s) could not be delivered") ||
		!strings.Contains(out, "alerts: 1 opened") {
		t.Fatalf("exit %d, want 1 with both the failure summary and the undelivered alert\n%s%s", code, out, errOut)
	}
}

// TestFleetForgetResolvesAgentIncident: a host taken out of service keeps
// its last report, so its "old certificate" incident stays open; `certfleet
// fleet forget` deletes its reports, the next round resolves the incident
// (notified once), and the audit trail records who did it.
func TestFleetForgetResolvesAgentIncident(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	recv := daemontest.NewAlertReceiver(t)
	path := daemontest.WriteConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+daemontest.AlertsSection(t, dir, recv, "stale_grace = \"1s\"\n"))
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("issuance failed")
	}
	cur := daemontest.Current(t, d, "web")
	fleet := d.Store.(certfleet.FleetStore)
	if err := fleet.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "gone", Certificate: "web", KeyType: certfleet.ECDSAP256,
		Serial: "01", Fingerprint: "00", InstalledAt: cur.IssuedAt.Add(-time.Hour), ReportedAt: cur.IssuedAt, TokenID: "tok_x"}); err != nil {
		t.Fatal(err)
	}
	clk.Set(cur.IssuedAt.Add(time.Minute))
	daemontest.AlertRound(t, d)
	daemontest.AlertRound(t, d)
	got := recv.Notifications()
	if len(got) != 1 || got[0].State != "opened" || got[0].Agent != "gone" {
		t.Fatalf("want one opened incident for agent gone, got %v", recv.States())
	}
	if code, out, errOut := runCLI(t, "fleet", "forget", "-config", path, "gone"); code != 0 || !strings.Contains(out, "agent gone forgotten (1 report(s) deleted)") {
		t.Fatalf("fleet forget: exit %d\n%s%s", code, out, errOut)
	}
	daemontest.AlertRound(t, d)
	daemontest.AlertRound(t, d)
	if got := recv.Notifications(); len(got) != 2 || got[1].State != "resolved" || got[1].Agent != "gone" {
		t.Fatalf("want the incident resolved once, got %v", recv.States())
	}
	if code, _, errOut := runCLI(t, "fleet", "forget", "-config", path, "gone"); code != 1 || !strings.Contains(errOut, `agent "gone" has no reports`) {
		t.Fatalf("forgetting again: exit %d\n%s", code, errOut)
	}
	if code, out, _ := runCLI(t, "audit", "-config", path, "-kind", "agent_forgotten"); code != 0 || !strings.Contains(out, "agent gone forgotten") {
		t.Fatalf("audit of the forget: exit %d\n%s", code, out)
	}
}

// TestServeAlerts runs the daemon's Serve loop against a short-lived
// Pebble profile, in real time: the renewal fails at validation, the
// evaluator (woken by the failure event and its interval) notifies opened,
// then worsened as expiry nears and again when the certificate expires, and
// resolved after an operator's retry succeeds once validation is fixed.
// status lists the open incident.
func TestServeAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 20-second certificate to age")
	}
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	httpPort := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: httpPort,
		Profiles: map[string]pebbleca.Profile{"short": {ValidityPeriod: 20 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	respPort := daemontest.FreePort(t)
	broken := daemontest.BreakableFront(t, httpPort, respPort, func(w http.ResponseWriter) { http.Error(w, "gone", http.StatusNotFound) })

	dir := t.TempDir()
	recv := daemontest.NewAlertReceiver(t)
	path := daemontest.WriteConfig(t, dir, ca, respPort, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
profile = "short"
renew_before = "15s"
`+daemontest.AlertsSection(t, dir, recv, "interval = \"1s\"\nexpiry_warning = \"1h\"\nexpiry_critical = \"6s\"\n"))
	d := daemontest.OpenDaemon(t, path, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s; webhook got %v", what, recv.States())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	key := certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}
	var first certfleet.Issuance
	waitFor("the first certificate", func() bool {
		j, err := d.Store.Job(ctx, key)
		if err != nil || j.CurrentID == 0 {
			return false
		}
		first, _ = d.Store.Issuance(ctx, j.CurrentID)
		return true
	})
	t.Logf("first certificate: not before %s, not after %s (now %s)", first.NotBefore, first.NotAfter, time.Now())
	broken.Store(true)
	waitFor("an opened notification", func() bool { return len(recv.States()) >= 1 })
	waitFor("a worsened notification", func() bool { return len(recv.States()) >= 2 })
	for _, n := range recv.Notifications() {
		t.Logf("%s at %s: %s", n.State, n.SentAt, n.Summary)
	}
	if got := recv.States(); got[0] != "opened/warning" || got[1] != "worsened/critical" {
		t.Fatalf("webhook got %v, want opened/warning then worsened/critical", got)
	}
	var out strings.Builder
	if err := printIncidents(ctx, &out, d.Store, time.Now()); err != nil || !strings.Contains(out.String(), "CRITICAL") ||
		!strings.Contains(out.String(), "expiry") {
		t.Errorf("status incidents:\n%s(%v)", out.String(), err)
	}
	waitFor("the certificate to expire", func() bool { return len(recv.States()) >= 3 })
	if got := recv.States(); got[2] != "worsened/expired" {
		t.Fatalf("webhook got %v, want worsened/expired third", got)
	}
	broken.Store(false)
	if err := d.Store.RetryNow(ctx, key); err != nil { // the operator's retry
		t.Fatal(err)
	}
	d.Manager.Wake()
	waitFor("a resolved notification", func() bool { return len(recv.States()) >= 4 })
	time.Sleep(2 * time.Second) // more rounds: nothing more is sent
	if got := recv.States(); fmt.Sprint(got) != "[opened/warning worsened/critical worsened/expired resolved/expired]" {
		t.Fatalf("webhook got %v", got)
	}
	if cur := daemontest.Current(t, d, "web"); cur.Serial == first.Serial {
		t.Fatal("resolved without a new certificate")
	}
}
