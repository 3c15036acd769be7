package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/storetest"
)

// extrasArgs are arguments of a PageExtras statement: a page's jobs or
// names, and the attempts per job.
func extrasArgs(name string) []any {
	switch name {
	case "attempts":
		return []any{`[["s-001000","ecdsa-p256"],["s-001001","ecdsa-p256"]]`, 5}
	case "reports":
		return []any{`["s-001000","s-001001"]`}
	case "chains":
		return []any{`[1000,1001]`}
	}
	return []any{`[["s-001000","ecdsa-p256"],["s-001001","ecdsa-p256"]]`}
}

// TestSQLiteListingExtrasPlans (issue 13): each statement of a page's
// extras looks every row up by index, walking nothing but the page's own
// list (json_each).
func TestSQLiteListingExtrasPlans(t *testing.T) {
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
	scan := regexp.MustCompile(`^SCAN (\w+)`)
	stmts := sqlstore.PageExtrasForTest()
	for _, n := range sortedNames(stmts) {
		rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+stmts[n].Text(sqlstore.SQLite), extrasArgs(n)...)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
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
		if n == "reasons" {
			checkReasonsIndex(t, lines)
		}
		for _, l := range lines {
			// The page's list (json_each, k) is walked; a table never.
			if m := scan.FindStringSubmatch(l); m != nil && m[1] != "json_each" && m[1] != "k" && !strings.Contains(l, "USING") {
				t.Errorf("%s: a scan of a table (%s):\n%s", n, l, strings.Join(lines, "\n"))
			}
		}
	}
}

// TestPostgresListingExtrasPlans: the same on PostgreSQL, with 20,000
// certificates, three attempts, an event and an agent's report each, an
// issuance for half, a tenth waiting for a budget, and fresh statistics:
// no sequential scan.
func TestPostgresListingExtrasPlans(t *testing.T) {
	_, c := planStore(t, 20000,
		`INSERT INTO attempts (job_id, instance, started_at, finished_at, outcome, order_url, error, problem_type)
			SELECT id, 'o', now(), now(), 'failed', '', 'boom', '' FROM jobs, generate_series(1, 3)`,
		`INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
			SELECT now(), 'order_failed', 'daemon:x', 'daemon', '', spec, key_type, '', 0, 'dns', '' FROM jobs`,
		`INSERT INTO agent_reports (agent, spec, key_type, serial, fingerprint, commands, error, reported_at, token_id)
			SELECT 'a1', spec, key_type, '', '', '[]', '', now(), '' FROM jobs`,
		`INSERT INTO issuances (spec, key_type, spec_revision, identifiers, serial, fingerprint, chain_pem,
			ari_cert_id, ca, account_url, order_url, cert_url)
			SELECT spec, key_type, '', '[]', id::text, id::text, '', '', '', '', '', '' FROM jobs WHERE id % 2 = 0`,
		`INSERT INTO rate_waits (job_id, ticket, ca, bucket, name, since, turn)
			SELECT id, id, 'ca', 'orders|default', 'new orders', now(), now() FROM jobs WHERE id % 10 = 0`,
		`ANALYZE`)
	stmts := sqlstore.PageExtrasForTest()
	for _, n := range sortedNames(stmts) {
		lines := planLines(t, c, "EXPLAIN "+stmts[n].Text(sqlstore.Postgres), extrasArgs(n)...)
		if n == "reasons" {
			checkReasonsIndex(t, lines)
		}
		for _, l := range lines {
			// A wait's place counts the jobs ahead of it in its bucket's
			// queue (as BudgetWaits does): that count may read the queue
			// whole; the page's rows themselves are looked up by index.
			if strings.Contains(l, "Seq Scan") && !strings.Contains(l, "Seq Scan on rate_waits o ") {
				t.Errorf("%s: a scan of a table (%s):\n%s", n, strings.TrimSpace(l), strings.Join(lines, "\n"))
			}
		}
	}
}

// checkReasonsIndex (issue 13): a row's newest failure is looked for
// among its certificate's events (audit_events_certificate), not among
// every certificate's failures newest first (audit_events_kind), which
// SQLite chose: a walk of every order_failed event in the store for each
// row without one.
func checkReasonsIndex(t *testing.T, lines []string) {
	t.Helper()
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "audit_events_certificate") || strings.Contains(plan, "audit_events_kind") {
		t.Errorf("reasons: want the events looked up by audit_events_certificate:\n%s", plan)
	}
}
