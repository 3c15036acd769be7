package status_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/status"
	"github.com/certfleet/certfleet/storetest"
)

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
	if err := status.Certificates(t.Context(), &b, store, false, now); err != nil {
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
	if err := status.Certificates(t.Context(), &b, store, false, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "customer1") {
		t.Fatalf("an expired hold is shown:\n%s", b.String())
	}
}

// TestFleet: an agent whose certificate is not the current one is
// shown as OLD, with its error; nothing is printed without reports.
func TestFleet(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var out bytes.Buffer
	if err := status.Fleet(ctx, &out, store, time.Now()); err != nil || out.Len() != 0 {
		t.Fatalf("without reports: %q, %v", out.String(), err)
	}
	at := time.Now().Add(-time.Minute)
	if err := store.PutAgentReport(ctx, certfleet.AgentReport{Agent: "lb1", Certificate: "web", KeyType: certfleet.ECDSAP256,
		Serial: "0abc", Fingerprint: "ff", InstalledAt: at, ReportedAt: at, Error: "command sudo systemctl reload nginx: exit status 1"}); err != nil {
		t.Fatal(err)
	}
	if err := status.Fleet(ctx, &out, store, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AGENT", "lb1", "0ABC", "OLD", "exit status 1", "1m0s ago"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
}

// TestStatusShowsPlannedRenewal is issue 16's: for a CA without ARI,
// status showed the scheduler's next look (the ARI poll, 6 h after
// issuance) as if it were the renewal. RENEWAL shows the renewal itself,
// the time the scheduler computes, within the safety margin.
func TestStatusShowsPlannedRenewal(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sp := storetest.NewSpec("web")
	sp.RenewAfter = 20 * 24 * time.Hour // renewal by age wins over a third left
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{sp}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	jobs, err := store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: now, Lease: time.Minute, Limit: 1})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	poll := now.Add(6 * time.Hour)
	iss, err := store.CompleteIssuance(ctx, "o", storetest.NewIssuance(sp, certfleet.ECDSAP256),
		certfleet.ScheduleUpdate{NextAt: poll}, certfleet.Attempt{Instance: "o"})
	if err != nil {
		t.Fatal(err)
	}
	want := certfleet.PlannedRenewal(sp, iss, certfleet.RenewalInfo{}, now, 0)
	if d := want.Sub(iss.NotBefore); d > 20*24*time.Hour || d < 20*24*time.Hour-90*24*time.Hour/certfleet.JitterFraction {
		t.Fatalf("planned renewal %v after issuance, want 20 days less the jitter", d)
	}
	var b bytes.Buffer
	if err := status.Certificates(ctx, &b, store, false, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "RENEWAL") || !strings.Contains(out, status.Time(want)) {
		t.Fatalf("status does not show the renewal at %s:\n%s", status.Time(want), out)
	}
}
