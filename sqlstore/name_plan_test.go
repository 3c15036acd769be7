package sqlstore_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/storetest"
)

// batchSpecsArg is a group commit's names as batchSpecs sends them: a
// JSON array.
func batchSpecsArg(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal([]string{"s-000010", "s-001234", "s-004999", "absent"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPostgresBatchSpecsPlan is issue 13: the read of a group commit's
// specs (every batch of PUTs sends one) finds them by the primary key, not
// by a scan of every spec. The former `name IN (SELECT
// jsonb_array_elements_text($1))` form was planned, with fresh statistics,
// as a hash semi-join over a sequential scan of specs up to some 15,000
// specs (the planner takes the set for 100 names, whatever the batch), and
// by the index beyond.
func TestPostgresBatchSpecsPlan(t *testing.T) {
	_, c := planStore(t, 5000, `ANALYZE`)
	plan := strings.Join(planLines(t, c, "EXPLAIN "+sqlstore.BatchSpecsForTest.Text(sqlstore.Postgres), batchSpecsArg(t)), "\n")
	if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "specs_pkey") {
		t.Errorf("batch specs: want lookups in specs_pkey, no scan of a table:\n%s", plan)
	}
}

// TestPostgresBatchSpecsPlanMadeWhenEmpty is issue 13's PUTs slowing
// down as names accumulated on PostgreSQL (1,599/s for the first 10,000
// names, 624/s for the last, BENCHMARKS §26): each pooled connection
// keeps the statement prepared, and the generic plan it made while specs
// was empty, a sequential scan, was never made again (no ANALYZE had
// touched the table: autovacuum off, or not yet run), so every batch read
// scanned every spec. The plan made on a small table must look the names
// up in specs_pkey all the same.
func TestPostgresBatchSpecsPlanMadeWhenEmpty(t *testing.T) {
	// 300: the size at which the old form's generic plan was a scan.
	for _, first := range []int{0, 300} {
		t.Run(fmt.Sprintf("planned at %d specs", first), func(t *testing.T) { batchSpecsPlanMadeAt(t, first) })
	}
}

func batchSpecsPlanMadeAt(t *testing.T, firstSpecs int) {
	ctx := t.Context()
	// No autoanalyze may make the plan again meanwhile, whatever the
	// server's setting; the plan is the one kept after five runs.
	s, c := planStore(t, firstSpecs, `ALTER TABLE specs SET (autovacuum_enabled = false)`, `SET plan_cache_mode = force_generic_plan`)
	text := sqlstore.BatchSpecsForTest.Text(sqlstore.Postgres)
	if _, err := c.Prepare(ctx, "batch", text); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		rows, err := c.Query(ctx, "batch", batchSpecsArg(t))
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, storetest.NewSpecs("s", 5000)); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(planLines(t, c, `EXPLAIN EXECUTE batch ('`+batchSpecsArg(t)+`')`), "\n")
	if strings.Contains(plan, "Seq Scan on specs") || !strings.Contains(plan, "specs_pkey") {
		t.Errorf("batch specs, planned on an empty table: want lookups in specs_pkey, no scan of specs:\n%s", plan)
	}
}

// TestSQLiteBatchSpecsPlan: the same statement on SQLite searches specs
// by its primary key.
func TestSQLiteBatchSpecsPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plan.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, storetest.NewSpecs("s", 3000)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+sqlstore.BatchSpecsForTest.Text(sqlstore.SQLite), batchSpecsArg(t))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	rows.Close()
	plan := strings.Join(lines, "; ")
	for _, l := range lines {
		if strings.HasPrefix(l, "SCAN specs") {
			t.Errorf("batch specs: %q scans specs; want a search by its primary key (plan: %s)", l, plan)
		}
	}
}
