package sqlite_test

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

// BenchmarkQueueJoin measures ReserveBudget for a job that joins the end of
// a rate-limit queue 10,000 long (issue 13): it counts the jobs ahead of it
// and reads the turn of the one a window's worth before it, under the
// write lock. Each iteration adds one more job to the queue.
func BenchmarkQueueJoin(b *testing.B) {
	const waiting, extra = 10000, 5000
	l := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 300, Window: 3 * time.Hour, Name: "new orders"}
	s := newTestStore(b)
	ctx := b.Context()
	specs := storetest.NewSpecs("q", l.Limit+waiting+extra)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().UTC()
	reserve := func(i int) certfleet.BudgetResult {
		res, err := s.ReserveBudget(ctx, certfleet.BudgetRequest{CA: "https://ca.test/dir",
			Job: certfleet.JobKey{Spec: specs[i].Name, KeyType: certfleet.ECDSAP256}, At: t0, Limits: []certfleet.BudgetLimit{l}})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	start := time.Now()
	for i := range l.Limit + waiting {
		reserve(i)
	}
	b.Logf("%d reservations and %d jobs joining the queue: %v", l.Limit, waiting, time.Since(start).Round(time.Millisecond))
	i := l.Limit + waiting
	for b.Loop() {
		if i == len(specs) {
			b.Fatalf("more than %d iterations: give -benchtime Nx with N <= %d", extra, extra)
		}
		if res := reserve(i); res.Wait == nil || !res.Wait.New || res.Wait.Place <= waiting {
			b.Fatalf("join %d: %+v; want a new wait behind the %d", i, res.Wait, waiting)
		}
		i++
	}
}
