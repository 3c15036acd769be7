package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// testPageExtras is the contract of certfleet.ListingExtras (issue 13): a
// page's extras, read at once, are what the per-row reads give
// (JobStore.Attempts, RateLimitStore.BudgetWaits, the newest
// order_failed event of AuditStore.Events, FleetStore.AgentReports);
// unknown jobs and certificates are absent.
func testPageExtras(t *testing.T, s TenantStore) {
	x, ok := s.(certfleet.ListingExtras)
	if !ok {
		t.Skip("the store has no ListingExtras")
	}
	ctx := t.Context()
	mustSync(t, s, certfleet.SourceConfig, NewSpec("q1", certfleet.ECDSAP256, certfleet.RSA2048), NewSpec("q2"), NewSpec("q3"), NewSpec("q4"))
	// Three rounds of attempts: each job claimed and failed (q4 deferred).
	now := time.Now()
	for round := range 3 {
		at := now.Add(time.Duration(round) * 2 * time.Hour)
		jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: at.Add(time.Second), Lease: time.Minute, Limit: 10})
		if err != nil || len(jobs) != 5 {
			t.Fatalf("round %d: claimed %d, %v; want the 5 jobs", round, len(jobs), err)
		}
		for _, j := range jobs {
			a := certfleet.Attempt{JobKey: j.JobKey, Instance: "o", StartedAt: at, FinishedAt: at, Outcome: certfleet.OutcomeFailed,
				Error: j.Spec + " failed", ProblemType: "urn:ietf:params:acme:error:dns"}
			if j.Spec == "q4" {
				a.Outcome, a.ProblemType = certfleet.OutcomeDeferred, ""
				err = s.DeferJob(ctx, j.JobKey, "o", a, at.Add(time.Hour))
			} else {
				err = s.FailJob(ctx, j.JobKey, "o", a, at.Add(time.Hour))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// q3 and q4 wait for a budget of 2, behind q1 and q2.
	orders := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 2, Window: time.Hour, Name: "new orders"}
	for i, job := range []string{"q1", "q2", "q3", "q4"} {
		mustReserve(t, s, queueRequest(job, testT0.Add(time.Duration(i)*time.Minute), orders))
	}
	// Failure classes: q1's ECDSA job by its own event, q2's by the newest
	// of two for no key type; q1's RSA job has none of its own.
	audit, hasAudit := s.(certfleet.AuditStore)
	if hasAudit {
		for _, e := range []certfleet.Event{
			{Kind: certfleet.EventOrderFailed, Certificate: "q1", KeyType: certfleet.ECDSAP256, Reason: "dns", At: now},
			{Kind: certfleet.EventOrderFailed, Certificate: "q2", Reason: "old", At: now},
			{Kind: certfleet.EventOrderFailed, Certificate: "q2", Reason: "rateLimited", At: now.Add(time.Second)},
			{Kind: certfleet.EventIssued, Certificate: "q3", Reason: "not a failure", At: now},
		} {
			e.Actor = "daemon:test"
			if err := audit.RecordEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	fleet, hasFleet := s.(certfleet.FleetStore)
	if hasFleet {
		for _, r := range []certfleet.AgentReport{{Agent: "a1", Certificate: "q1", KeyType: certfleet.ECDSAP256}, {Agent: "a2", Certificate: "q1", KeyType: certfleet.RSA2048},
			{Agent: "a1", Certificate: "q3", KeyType: certfleet.ECDSAP256, Serial: "01"}} {
			if err := fleet.PutAgentReport(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}

	keys := []certfleet.JobKey{keyOf("q1", certfleet.ECDSAP256), keyOf("q1", certfleet.RSA2048), keyOf("q2", certfleet.ECDSAP256),
		keyOf("q3", certfleet.ECDSAP256), keyOf("q4", certfleet.ECDSAP256)}
	unknown := []certfleet.JobKey{keyOf("nosuch", certfleet.ECDSAP256), keyOf("q2", certfleet.RSA2048)}
	names := []string{"q1", "q2", "q3", "q4", "nosuch"}
	for _, per := range []int{0, 2, 5} {
		ex, err := x.PageExtras(ctx, certfleet.PageExtrasQuery{Attempts: append(keys, unknown...), AttemptsPer: per,
			Waits: append(keys, unknown...), Reasons: append(keys, unknown...), Reports: names})
		if err != nil {
			t.Fatalf("PageExtras: %v", err)
		}
		for _, k := range keys {
			want, err := s.Attempts(ctx, k, max(per, 1))
			if err != nil {
				t.Fatal(err)
			}
			got := ex.Attempts[k]
			if len(got) != len(want) {
				t.Fatalf("per %d: attempts of %s: %d, want %d (%+v)", per, k, len(got), len(want), got)
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.ID != w.ID || g.JobKey != w.JobKey || g.Outcome != w.Outcome || g.Error != w.Error || g.ProblemType != w.ProblemType ||
					g.Instance != w.Instance || !sameTime(g.StartedAt, w.StartedAt) || !sameTime(g.FinishedAt, w.FinishedAt) {
					t.Errorf("per %d: attempt %d of %s = %+v, want %+v", per, i, k, g, w)
				}
			}
			wantWaits := mustWaits(t, s, certfleet.BudgetWaitFilter{Spec: k.Spec, KeyType: k.KeyType})
			gotWaits := ex.Waits[k]
			if len(gotWaits) != len(wantWaits) {
				t.Fatalf("waits of %s = %+v, want %+v", k, gotWaits, wantWaits)
			}
			for i := range wantWaits {
				g, w := gotWaits[i], wantWaits[i]
				if g.Job != w.Job || g.CA != w.CA || g.Bucket != w.Bucket || g.Name != w.Name || g.Ticket != w.Ticket || g.Place != w.Place ||
					!sameTime(g.Turn, w.Turn) || !sameTime(g.Since, w.Since) {
					t.Errorf("wait %d of %s = %+v, want %+v", i, k, g, w)
				}
			}
		}
		if len(ex.Waits[keyOf("q3", certfleet.ECDSAP256)]) != 1 || ex.Waits[keyOf("q4", certfleet.ECDSAP256)][0].Place != 2 {
			t.Errorf("waits = %+v; want q3 and q4 waiting, q4 second", ex.Waits)
		}
		for _, k := range unknown {
			if _, ok := ex.Attempts[k]; ok {
				t.Errorf("attempts of %s, unknown: %+v", k, ex.Attempts[k])
			}
			if _, ok := ex.Reasons[k]; ok {
				t.Errorf("reason of %s, unknown: %q", k, ex.Reasons[k])
			}
		}
		if hasAudit {
			want := map[certfleet.JobKey]string{keyOf("q1", certfleet.ECDSAP256): "dns", keyOf("q2", certfleet.ECDSAP256): "rateLimited"}
			if len(ex.Reasons) != len(want) {
				t.Errorf("reasons = %v, want %v", ex.Reasons, want)
			}
			for k, r := range want {
				if got, ok := ex.Reasons[k]; !ok || got != r {
					t.Errorf("reason of %s = %q (%v), want %q", k, got, ok, r)
				}
			}
		}
		if hasFleet {
			for _, n := range names {
				want, err := fleet.AgentReports(ctx, certfleet.AgentReportFilter{Certificate: n})
				if err != nil {
					t.Fatal(err)
				}
				got := ex.Reports[n]
				if len(got) != len(want) || !slices.EqualFunc(got, want, func(a, b certfleet.AgentReport) bool {
					return a.Agent == b.Agent && a.Certificate == b.Certificate && a.KeyType == b.KeyType && a.Serial == b.Serial && sameTime(a.ReportedAt, b.ReportedAt)
				}) {
					t.Errorf("reports of %s = %+v, want %+v", n, got, want)
				}
			}
		}
	}
	// Nothing asked, nothing read; more than a page's worth, EINVALID.
	if ex, err := x.PageExtras(ctx, certfleet.PageExtrasQuery{}); err != nil || ex.Attempts != nil || ex.Reports != nil {
		t.Errorf("PageExtras({}) = %+v, %v; want nothing", ex, err)
	}
	big := make([]string, certfleet.MaxCertificatePage+1)
	if _, err := x.PageExtras(ctx, certfleet.PageExtrasQuery{Reports: big}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Errorf("PageExtras of %d reports: %v; want EINVALID", len(big), err)
	}
}
