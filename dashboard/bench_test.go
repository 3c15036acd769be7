package dashboard_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

// BenchmarkList renders list pages of a fleet of 10,000 certificates in a
// real SQLite store (2,000 issued, 100 failing, the rest pending): the
// first page, a status filter and a text filter. Each request reads every
// spec and job; the issuances are cached after the first request.
//
//	go test -run '^$' -bench BenchmarkList -benchtime 20x ./dashboard
func BenchmarkList(b *testing.B) {
	const n = 10000
	specs := storetest.NewSpecs("web", n)
	e := newEnv(b, specs...)
	ctx := b.Context()
	jobs, err := e.store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "test", Now: time.Now().Add(time.Second), Lease: time.Hour, Limit: n})
	if err != nil || len(jobs) != n {
		b.Fatalf("claim: %d jobs, %v", len(jobs), err)
	}
	for i, j := range jobs {
		switch {
		case i < 2000:
			sp := specs[i]
			if sp.Name != j.Spec {
				sp, err = e.store.Spec(ctx, j.Spec)
				if err != nil {
					b.Fatal(err)
				}
			}
			_, err = e.store.CompleteIssuance(ctx, "test", storetest.NewIssuance(sp, j.KeyType), certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)},
				certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeIssued})
		case i < 2100:
			err = e.store.FailJob(ctx, j.JobKey, "test", certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(),
				Outcome: certfleet.OutcomeFailed, Error: "validation failed", ProblemType: "urn:ietf:params:acme:error:unauthorized"}, time.Now().Add(time.Hour))
		default:
			err = e.store.ReleaseLease(ctx, j.JobKey, "test")
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)
	for _, bc := range []struct{ name, query string }{
		{"first page", ""},
		{"status=failing", "status=failing"},
		{"q=web-0099", "q=web-0099"},
		{"page 100", "page=100"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if r := e.do("GET", "/dashboard/?"+bc.query, c, nil, nil); r.status != http.StatusOK || rows(r.body) == 0 {
					b.Fatalf("status %d, %d rows", r.status, rows(r.body))
				}
			}
		})
	}
}
