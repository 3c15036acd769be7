package sqlite_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// newBenchStore returns a store holding n single-key-type jobs, job k due at
// base+k seconds (so none is due before base).
func newBenchStore(b *testing.B, n int) (s *sqlite.Store, base time.Time) {
	b.Helper()
	s = newTestStore(b)
	start := time.Now()
	if _, err := s.SyncSpecs(b.Context(), certfleet.SourceConfig, storetest.NewSpecs("bench", n)); err != nil {
		b.Fatal(err)
	}
	synced := time.Since(start)
	base = time.Now().Add(time.Hour)
	if _, err := rawDB(b, s.Path).Exec(`UPDATE jobs SET next_at = ? + id * 1000000`, base.UnixMicro()); err != nil {
		b.Fatal(err)
	}
	b.Logf("SyncSpecs of %d new specs: %v", n, synced)
	return s, base
}

// BenchmarkClaimDue100k claims 32 due jobs among 100,000. The claim time
// advances 32 s per call, so each call finds 32 newly due jobs behind the
// ones already leased (10-minute leases, so about 600 leased due jobs are
// skipped per call) and, once every job is due, re-claims expired leases.
func BenchmarkClaimDue100k(b *testing.B) {
	s, base := newBenchStore(b, 100_000)
	i := 0
	for b.Loop() {
		i++
		now := base.Add(time.Duration(i) * 32 * time.Second)
		jobs, err := s.ClaimDue(b.Context(), certfleet.ClaimRequest{Owner: "bench", Now: now, Lease: 10 * time.Minute, Limit: 32})
		if err != nil {
			b.Fatal(err)
		}
		if len(jobs) != 32 {
			b.Fatalf("call %d claimed %d jobs, want 32", i, len(jobs))
		}
	}
}

// BenchmarkNextDue100k finds the earliest due time among 100,000 jobs.
func BenchmarkNextDue100k(b *testing.B) {
	s, base := newBenchStore(b, 100_000)
	for b.Loop() {
		at, ok, err := s.NextDue(b.Context())
		if err != nil || !ok || at.Before(base) {
			b.Fatalf("NextDue = %v, %v, %v", at, ok, err)
		}
	}
}

// BenchmarkIssueCycle is the store's share of one certificate: claim a
// job, put and delete its challenge token, and complete the issuance
// (archive, job update, attempt), over a pool of 1,000 jobs that are due
// again at once. 1,000 certificates cost 1,000 times ns/op.
func BenchmarkIssueCycle(b *testing.B) {
	s := newTestStore(b)
	specs := storetest.NewSpecs("cycle", 1000)
	if _, err := s.SyncSpecs(b.Context(), certfleet.SourceConfig, specs); err != nil {
		b.Fatal(err)
	}
	// Realistic sizes: a 2-certificate chain and a P-256 key.
	chain := []byte(strings.Repeat("-----BEGIN CERTIFICATE-----\n"+strings.Repeat("A", 1200)+"\n-----END CERTIFICATE-----\n", 2))
	key := []byte("-----BEGIN PRIVATE KEY-----\n" + strings.Repeat("B", 180) + "\n-----END PRIVATE KEY-----\n")
	ctx := b.Context()
	for b.Loop() {
		now := time.Now()
		jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: now, Lease: time.Minute, Limit: 1})
		if err != nil || len(jobs) != 1 {
			b.Fatalf("ClaimDue = %d jobs, %v", len(jobs), err)
		}
		j := jobs[0]
		tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: j.Spec + "-token", KeyAuthorization: "ka", Expires: now.Add(time.Minute)}
		if err := s.PutChallenge(ctx, tok); err != nil {
			b.Fatal(err)
		}
		if err := s.DeleteChallenge(ctx, tok.Type, tok.Key); err != nil {
			b.Fatal(err)
		}
		iss := storetest.NewIssuance(storetest.NewSpec(j.Spec), j.KeyType)
		iss.ChainPEM, iss.KeyPEM = chain, key
		if _, err := s.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: now},
			certfleet.Attempt{Instance: "bench", StartedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompleteIssuance measures CompleteIssuance alone, on jobs
// claimed beforehand in batches outside the timer.
func BenchmarkCompleteIssuance(b *testing.B) {
	s := newTestStore(b)
	if _, err := s.SyncSpecs(b.Context(), certfleet.SourceConfig, storetest.NewSpecs("ci", 1000)); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	var queue []certfleet.Job
	for b.Loop() {
		if len(queue) == 0 {
			b.StopTimer()
			jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "bench", Now: time.Now(), Lease: time.Hour, Limit: 1000})
			if err != nil || len(jobs) == 0 {
				b.Fatalf("ClaimDue = %d jobs, %v", len(jobs), err)
			}
			queue = jobs
			b.StartTimer()
		}
		j := queue[0]
		queue = queue[1:]
		iss := storetest.NewIssuance(storetest.NewSpec(j.Spec), j.KeyType)
		if _, err := s.CompleteIssuance(ctx, "bench", iss, certfleet.ScheduleUpdate{NextAt: time.Now()}, certfleet.Attempt{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestClaimDueQueryPlan guards the claim's index use: the due-job scan
// must walk jobs_due in order (no full scan, no sort of all due jobs), or
// ClaimDue slows down with the number of jobs.
func TestClaimDueQueryPlan(t *testing.T) {
	s := newTestStore(t)
	db := rawDB(t, s.Path)
	queries := map[string]string{
		"claim": `SELECT id FROM jobs WHERE disabled = 0 AND next_at <= 1 AND (lease_until IS NULL OR lease_until <= 1) ORDER BY next_at LIMIT 32`,
		"next":  `SELECT next_at FROM jobs WHERE disabled = 0 ORDER BY next_at LIMIT 1`,
	}
	for name, q := range queries {
		rows, err := db.Query(`EXPLAIN QUERY PLAN ` + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, "USING COVERING INDEX jobs_due") || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("%s query plan %q: want a walk of the covering index jobs_due without sorting", name, got)
		}
	}
}
