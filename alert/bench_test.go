package alert_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/storetest"
)

// BenchmarkRound measures one steady-state round over a SQLite store of
// 2,000 certificates, a tenth of them near expiry with failing renewals
// (incidents open and already notified), and a webhook notifier with
// nothing owed.
func BenchmarkRound(b *testing.B) {
	const n = 2000
	s := openSQLite(b, filepath.Join(b.TempDir(), "certfleet.db"))
	ctx := b.Context()
	t0 := fillFailing(b, s, n, 10)
	r := newReceiver(b)
	clk := &clock{now: t0.Add(80 * 24 * time.Hour)}
	e := &alert.Evaluator{Store: s, Instance: "bench", Now: clk.Now, Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL}}}
	rep, err := e.Round(ctx) // opens and notifies the incidents
	if err != nil || rep.Opened != n/10 || rep.Sent != n/10 {
		b.Fatalf("first round = %+v, %v", rep, err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := e.Round(ctx)
		if err != nil || rep.Opened != 0 || rep.Sent != 0 || rep.Updated != n/10 {
			b.Fatalf("round = %+v, %v", rep, err)
		}
	}
}

// fillFailing issues n certificates in s, valid 90 days from the time it
// returns (t0), next checked at t0+60 days; every every-th has a failed
// renewal (due again at t0+1h).
func fillFailing(tb testing.TB, s certfleet.Store, n, every int) time.Time {
	tb.Helper()
	ctx := tb.Context()
	specs := storetest.NewSpecs("bench", n)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now().UTC()
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now().Add(time.Second), Lease: time.Hour, Limit: n})
	if err != nil || len(jobs) != n {
		tb.Fatalf("claimed %d: %v", len(jobs), err)
	}
	byName := map[string]certfleet.CertificateSpec{}
	for _, sp := range specs {
		byName[sp.Name] = sp
	}
	for i, j := range jobs {
		iss := storetest.NewIssuance(byName[j.Spec], j.KeyType)
		iss.NotBefore, iss.NotAfter = t0, t0.Add(90*24*time.Hour)
		iss.Fingerprint = fmt.Sprintf("%064x", i)
		if _, err := s.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: t0.Add(60 * 24 * time.Hour)},
			certfleet.Attempt{JobKey: j.JobKey, Instance: "bench", Outcome: certfleet.OutcomeIssued}); err != nil {
			tb.Fatal(err)
		}
		if i%every == 0 {
			if err := s.RetryNow(ctx, j.JobKey); err != nil {
				tb.Fatal(err)
			}
			claimed, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now().Add(time.Second), Lease: time.Hour, Limit: 1})
			if err != nil || len(claimed) != 1 {
				tb.Fatal(err)
			}
			if err := s.FailJob(ctx, claimed[0].JobKey, "bench", certfleet.Attempt{JobKey: claimed[0].JobKey, Instance: "bench",
				Outcome: certfleet.OutcomeFailed, Error: "refused"}, t0.Add(time.Hour)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return t0
}
