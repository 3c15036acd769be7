package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
)

// TestSQLiteSchedulerPlans guards the index use of the statements ClaimDue
// and NextDue send to SQLite: the due-job scan must walk the partial index
// jobs_due in order (no full scan, no sort of all due jobs), or both slow
// down with the number of jobs. SQLite uses a partial index only when the
// query repeats its predicate (disabled = 0): a form written for both
// dialects (NOT disabled) would lose it.
func TestSQLiteSchedulerPlans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name string
		q    sqlstore.Q
		args []any
	}{
		{"claim", sqlstore.ClaimDueForTest, []any{"owner", 2, 1, 32}},
		{"next due", sqlstore.NextDueForTest, nil},
	} {
		rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.q.Text(sqlstore.SQLite), tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
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
		if !strings.Contains(got, "USING COVERING INDEX jobs_due") || strings.Contains(got, "TEMP B-TREE") || slices.Contains(plan, "SCAN jobs") {
			t.Errorf("%s query plan %q: want a walk of the covering index jobs_due without sorting", tc.name, got)
		}
	}
}
