package main

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestIssueRunsAlerts: cron users, who run `certfleet issue` instead of
// serve, get alerts too. A certificate whose renewal starts failing for real
// (a name added, validated through a web root nobody serves) is within the warning
// time: the issue run that fails opens the incident and notifies once; the
// next run sends nothing more.
func TestIssueRunsAlerts(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	path, recv := daemontest.WriteWebAlertsConfig(t, ca, port, "", "expiry_warning = \"400d\"\n")
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
	// The second run tries nothing (web waits for its backoff), sends
	// nothing more, and still fails naming web, its cause and next try
	// (issue 15, finding 1: cron saw the failure only once).
	if code, out, errOut = runCLI(t, "issue", "-config", path); !strings.Contains(out, "nothing due now") || strings.Contains(out, "1 notification(s) sent") {
		t.Fatalf("second run notified again: exit %d\n%s%s", code, out, errOut)
	} else if code != 1 || !strings.Contains(out, "FAILING  web") || !strings.Contains(out, "next try") || !strings.Contains(errOut, "1 certificate(s) failing") {
		t.Fatalf("second run: exit %d, want 1 naming web, its cause and next try\n%s%s", code, out, errOut)
	}
	recv.Want(t, "opened/warning")
}

// TestIssueAlertDeliveryFails: when the webhook is down, issue still prints
// the pass's failure summary and adds that the notification stays owed.
func TestIssueAlertDeliveryFails(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	path, recv := daemontest.WriteWebAlertsConfig(t, ca, port, "", "expiry_warning = \"400d\"\n")
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	recv.Close() // the webhook goes down
	daemontest.BreakWebRenewal(t, path)
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(errOut, "1 certificate(s) failing") || !strings.Contains(errOut, "1 alert notification(s) could not be delivered") ||
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
	path, recv := daemontest.WriteWebAlertsConfig(t, ca, port, "", "stale_grace = \"1s\"\n")
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
