package postgres

import (
	"context"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
)

// TranslateForTest exposes translate to the external tests.
var TranslateForTest = translate

// EventQueryForTest returns the page query s.Events runs for f (checked),
// in PostgreSQL's form, with the cursor's time read first: what
// TestEventQueryPlans EXPLAINs.
func EventQueryForTest(s *Store, ctx context.Context, f certfleet.EventFilter) (string, []any, error) {
	var cursorAt time.Time
	if f.BeforeID > 0 {
		if err := s.pool.QueryRow(ctx, `SELECT at FROM audit_events WHERE id = $1`, f.BeforeID).Scan(&cursorAt); err != nil {
			return "", nil, err
		}
	}
	q, args := sqlstore.EventQuery(f, cursorAt)
	return q.Text(sqlstore.Postgres), args, nil
}

// SetCompactWaitForTest sets how long Compact waits for older snapshots,
// and restores it when t ends.
func SetCompactWaitForTest(t interface{ Cleanup(func()) }, d time.Duration) {
	old := compactWait
	compactWait = d
	t.Cleanup(func() { compactWait = old })
}
