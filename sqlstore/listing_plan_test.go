package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/storetest"
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
		driver := ""                // the first search: the driver's walk
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
			if driver == "" && strings.HasPrefix(detail, "SEARCH") {
				driver = detail
			}
			switch {
			case strings.HasPrefix(detail, "SCAN") && !(detail == "SCAN s" && parent == 0):
				t.Errorf("%s: %q is a scan", n, detail)
			case strings.Contains(detail, "TEMP B-TREE") && coroutine[id]:
				t.Errorf("%s: %q sorts the driver's rows", n, detail)
			}
		}
		rows.Close()
		// The driver's walk starts at the cursor: its search has the
		// key's range, not only the tenant's or the source's equality
		// (which walked every row of the tenant or source up to the
		// cursor).
		if !strings.Contains(driver, ">?") && !strings.Contains(driver, "<?") {
			t.Errorf("%s: the driver's search %q does not start at the cursor", n, driver)
		}
		if t.Failed() {
			t.Logf("%s:\n  %s", n, strings.Join(lines, "\n  "))
		}
	}
}

// TestPostgresListingPlans: the same on PostgreSQL, with 20,000
// certificates (a tenth failing, half issued) and fresh statistics: index
// scans only, no sequential scan.
func TestPostgresListingPlans(t *testing.T) {
	_, c := planStore(t, 20000,
		`UPDATE jobs SET failures = 1 WHERE id % 10 = 0`,
		// Half of them issued.
		`INSERT INTO issuances (spec, key_type, spec_revision, identifiers, serial, fingerprint, chain_pem,
			ari_cert_id, ca, account_url, order_url, cert_url)
		SELECT spec, key_type, '', '[]', id::text, id::text, '', '', '', '', '', '' FROM jobs WHERE id % 2 = 0`,
		`UPDATE jobs j SET current_id = i.id FROM issuances i WHERE i.spec = j.spec AND i.key_type = j.key_type`,
		`ANALYZE`)
	stmts := sqlstore.ListingForTest()
	for _, n := range sortedNames(stmts) {
		plan := strings.Join(planLines(t, c, "EXPLAIN "+stmts[n].Text(sqlstore.Postgres), listingArgs(n)...), "\n")
		// A bitmap scan of an index range is an index's answer too: the
		// range is at most listingScan rows of the driver.
		if strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s: a scan of a table:\n%s", n, plan)
		}
	}
}

// TestPostgresListingPrefixWalk is issue 13's "any page and filter": a
// page of a source's or a tenant's certificates, and its bound, walk the
// (source, name) or (tenant, name) index from the cursor, however many of
// the source's or tenant's rows sort before it. With 20,000 certificates
// all in one source and one tenant and the cursor near the end (near the
// start, walking back), such a walk reads a handful of index pages; one
// that starts at the source's or tenant's first row reads some 80.
func TestPostgresListingPrefixWalk(t *testing.T) {
	ctx := t.Context()
	_, c := planStore(t, 20000, `UPDATE specs SET tenant = 't'`, `VACUUM ANALYZE specs`)
	stmts := sqlstore.ListingForTest()
	for _, n := range sortedNames(stmts) {
		prefix := ""
		switch {
		case strings.Contains(n, "source"):
			prefix = "source"
		case strings.Contains(n, "tenant"):
			prefix = "tenant"
		default:
			continue
		}
		back := strings.Contains(n, "back")
		cursor, end := "s-019000", "s-019999"
		if back {
			cursor, end = "s-001000", "s-000001"
		}
		var args []any
		switch {
		case strings.HasPrefix(n, "bound") && prefix == "source":
			args = []any{cursor, "config"}
		case strings.HasPrefix(n, "bound"):
			args = []any{cursor, "t"}
		case prefix == "source":
			args = []any{cursor, "", "config", false, "", false, 51, end}
		default:
			args = []any{cursor, "t", "", false, "", false, 51, end}
		}
		if strings.HasSuffix(n, " status") {
			now := time.Now()
			// pending: every certificate here, so the page fills.
			args = append(args, certfleet.ListingStatusRank("pending"), now, now.Add(14*24*time.Hour), false)
		}
		var plan []map[string]any
		if err := c.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+stmts[n].Text(sqlstore.Postgres), args...).Scan(&plan); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		index := "specs_" + prefix
		node, blocks := indexWalk(plan[0]["Plan"].(map[string]any), index)
		if node == nil {
			t.Errorf("%s: no walk of %s in the plan: %v", n, index, plan)
			continue
		}
		// The walk's start: the row value alone, no equality on the
		// prefix beside it (with one, PostgreSQL started at the
		// prefix's first row).
		cond, _ := node["Index Cond"].(string)
		if !strings.Contains(cond, "ROW("+prefix+", name)") || strings.Contains(cond, "("+prefix+" = ") {
			t.Errorf("%s: the walk of %s is bounded by %q, not by a row value from the cursor", n, index, cond)
		}
		// What it read, unless another session's snapshot kept VACUUM
		// from marking the pages all-visible: an index-only walk then
		// reads a heap page for each of its rows, whatever its start.
		if fetches, _ := node["Heap Fetches"].(float64); fetches > 0 {
			t.Logf("%s: the walk of %s read %d blocks, %v of its rows from the heap: not judged", n, index, blocks, fetches)
			continue
		}
		t.Logf("%s: the walk of %s read %d blocks", n, index, blocks)
		if blocks > 30 {
			t.Errorf("%s: the walk of %s read %d blocks: it did not start at the cursor", n, index, blocks)
		}
	}
}

// indexWalk finds the plan node (an EXPLAIN (FORMAT JSON) plan) that
// walks index and the shared blocks it read itself (a node's figures
// count its children's, its filter's subqueries among them).
func indexWalk(node map[string]any, index string) (map[string]any, int) {
	total := func(n map[string]any) int {
		b := 0
		for _, k := range []string{"Shared Hit Blocks", "Shared Read Blocks"} {
			if v, ok := n[k].(float64); ok {
				b += int(v)
			}
		}
		return b
	}
	own := total(node)
	var found map[string]any
	blocks := 0
	if kids, ok := node["Plans"].([]any); ok {
		for _, k := range kids {
			kid := k.(map[string]any)
			own -= total(kid)
			if n, b := indexWalk(kid, index); n != nil && found == nil {
				found, blocks = n, b
			}
		}
	}
	if found == nil && node["Index Name"] == index {
		return node, own
	}
	return found, blocks
}
