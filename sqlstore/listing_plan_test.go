package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/storetest"
	"github.com/jackc/pgx/v5"
)

// listingArgs are arguments of a listing statement: a page's, with its
// driver's filter, or a bound's.
func listingArgs(name string) []any {
	if strings.HasPrefix(name, "bound") {
		return []any{"s-001000", "x"}
	}
	tenant, source, term, failing := "", "", "", false
	switch {
	case strings.Contains(name, "tenant"):
		tenant = "t"
	case strings.Contains(name, "source"):
		source = "config"
	case strings.Contains(name, "term"):
		term = "example"
	case strings.Contains(name, "failing"):
		failing = true
	}
	args := []any{"s-001000", tenant, source, false, term, failing, 51, "s-002000"}
	if strings.HasSuffix(name, " status") {
		// A status filter (ok): its subquery looks the spec's jobs up
		// by index, as the other filters do.
		now := time.Now()
		args = append(args, 0, now, now.Add(14*24*time.Hour), false)
	}
	return args
}

func sortedNames(m map[string]sqlstore.Q) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestSQLiteListingPlans is issue 13: every statement of a listing page
// (each driver, each direction) and of its bound walks an index from the
// cursor, never a whole table, and the page's specs are cut in index
// order (no sort inside the page's subquery: only the page itself is
// sorted, with its jobs).
func TestSQLiteListingPlans(t *testing.T) {
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
	stmts := sqlstore.ListingForTest()
	for _, n := range sortedNames(stmts) {
		rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+stmts[n].Text(sqlstore.SQLite), listingArgs(n)...)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		var lines []string
		coroutine := map[int]bool{} // the steps of the page's subquery
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(detail, "CO-ROUTINE") || coroutine[parent] {
				coroutine[id] = true
			}
			lines = append(lines, detail)
			switch {
			case strings.HasPrefix(detail, "SCAN") && !(detail == "SCAN s" && parent == 0):
				t.Errorf("%s: %q is a scan", n, detail)
			case strings.Contains(detail, "TEMP B-TREE") && coroutine[id]:
				t.Errorf("%s: %q sorts the driver's rows", n, detail)
			}
		}
		rows.Close()
		if t.Failed() {
			t.Logf("%s:\n  %s", n, strings.Join(lines, "\n  "))
		}
	}
}

// TestPostgresListingPlans: the same on PostgreSQL, with 20,000
// certificates (a tenth failing, half issued) and fresh statistics: index
// scans only, no sequential scan.
func TestPostgresListingPlans(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, storetest.NewSpecs("s", 20000)); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `UPDATE jobs SET failures = 1 WHERE id % 10 = 0`); err != nil {
		t.Fatal(err)
	}
	// Half of them issued.
	if _, err := c.Exec(ctx, `INSERT INTO issuances (spec, key_type, spec_revision, identifiers, serial, fingerprint, chain_pem,
			ari_cert_id, ca, account_url, order_url, cert_url)
		SELECT spec, key_type, '', '[]', id::text, id::text, '', '', '', '', '', '' FROM jobs WHERE id % 2 = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `UPDATE jobs j SET current_id = i.id FROM issuances i WHERE i.spec = j.spec AND i.key_type = j.key_type`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	stmts := sqlstore.ListingForTest()
	for _, n := range sortedNames(stmts) {
		rows, err := c.Query(ctx, "EXPLAIN "+stmts[n].Text(sqlstore.Postgres), listingArgs(n)...)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		rows.Close()
		plan := strings.Join(lines, "\n")
		// A bitmap scan of an index range is an index's answer too: the
		// range is at most listingScan rows of the driver.
		if strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s: a scan of a table:\n%s", n, plan)
		}
	}
}
