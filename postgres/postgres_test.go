package postgres_test

import (
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/storetest"
)

// newTestStore opens a store on a new schema, closed when t ends.
func newTestStore(t testing.TB) *postgres.Store {
	t.Helper()
	return mustOpen(t, pgtest.DSN(t))
}

func mustOpen(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}
