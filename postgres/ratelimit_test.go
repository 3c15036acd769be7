package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreRateLimitContract(t *testing.T) {
	storetest.RunRateLimit(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}

// TestReserveAcrossInstances: three instances (each its own pool) reserving
// from one bucket at once on a shared database never take more than its
// limit between them: the advisory lock serialises count and insert.
func TestReserveAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b, c := mustOpen(t, dsn), mustOpen(t, dsn), mustOpen(t, dsn)
	storetest.RunReserveConcurrent(t, []certfleet.RateLimitStore{a, b, c})
}

// TestReserveBudgetLockKey: ReserveBudget queues on the advisory lock
// certfleet has always taken for a CA's budget, keyed
// 'certfleet.ratelimit|<schema>|<CA>', so instances of an older and a newer
// version sharing a database still exclude each other. A changed key makes
// this reservation go ahead while the lock is held.
func TestReserveBudgetLockKey(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	c := rawConn(t, s.DSN)
	const ca = "https://ca.example/directory"
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	var (
		schema string
		key    int64
	)
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	// The key as earlier versions computed it, from the schema they read
	// at open.
	if err := tx.QueryRow(ctx, `SELECT hashtextextended('certfleet.ratelimit|' || $1 || '|' || $2, 0)`, schema, ca).Scan(&key); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ReserveBudget(ctx, certfleet.BudgetRequest{CA: ca, Job: certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256},
			At: time.Now(), Limits: []certfleet.BudgetLimit{{Bucket: "orders|default", Limit: 10, Window: time.Hour, Name: "orders"}}})
		done <- err
	}()
	// Wait until the reservation waits for the lock (pg_locks is live, not
	// part of the transaction's snapshot).
	for waiting := false; !waiting; {
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND ((classid::bigint << 32) | objid::bigint) = $1)`, key).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("ReserveBudget returned (err %v) while another instance held the budget lock of %s", err, ca)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ReserveBudget after the lock was released: %v", err)
	}
}
