package postgres_test

import (
	"testing"

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
