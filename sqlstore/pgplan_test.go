package sqlstore_test

import (
	"context"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/storetest"
	"github.com/jackc/pgx/v5"
)

// planStore is the set-up of the PostgreSQL query-plan tests: a store in
// a schema of its own with specs certificates ("s-000000" on, source
// config), a connection of the test's own to the same schema, and the
// statements of setup run on it in order. Both are closed at the test's
// end.
func planStore(t *testing.T, specs int, setup ...string) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if specs > 0 {
		if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, storetest.NewSpecs("s", specs)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	for _, q := range setup {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return s, c
}

// planLines runs query (an EXPLAIN) on c and returns its lines.
func planLines(t *testing.T, c *pgx.Conn, query string, args ...any) []string {
	t.Helper()
	rows, err := c.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
