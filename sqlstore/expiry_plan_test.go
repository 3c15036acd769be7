package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
)

// TestSQLiteExpiryPlan is issue 13: the alert round's look at what
// expires soon reads the range of jobs_expiry below its bound, not every
// job in key order joined with its issuance (as it did before migrations
// 0036 and 0037: a round read all 100,000 at 100,000 certificates).
func TestSQLiteExpiryPlan(t *testing.T) {
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
	bound := time.Now().Add(14 * 24 * time.Hour).UnixMicro()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+sqlstore.ExpiringCertificatesForTest.Text(sqlstore.SQLite), "", "", 1000, "", bound)
	if err != nil {
		t.Fatal(err)
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
	if !strings.Contains(got, "SEARCH j USING INDEX jobs_expiry (current_not_after<?)") || strings.Contains(got, "SCAN") {
		t.Errorf("query plan %q: want a range of jobs_expiry below the bound, no scan", got)
	}
}

// TestPostgresExpiryPlan: the same on PostgreSQL with 20,000
// certificates, half issued, 1% of all within two weeks of their end,
// and fresh statistics: the range of jobs_expiry, no sequential scan of
// the jobs.
func TestPostgresExpiryPlan(t *testing.T) {
	ctx := t.Context()
	_, c := planStore(t, 20000,
		`INSERT INTO issuances (spec, key_type, spec_revision, identifiers, serial, fingerprint, chain_pem,
			ari_cert_id, ca, account_url, order_url, cert_url, not_before, not_after)
		SELECT spec, key_type, '', '[]', id::text, id::text, '', '', '', '', '', '', now() - interval '1 day',
			CASE WHEN id % 100 = 0 THEN now() + interval '3 days' ELSE now() + interval '60 days' END
		FROM jobs WHERE id % 2 = 0`,
		// current_id written: the trigger of 0036 copies the validity.
		`UPDATE jobs j SET current_id = i.id FROM issuances i WHERE i.spec = j.spec AND i.key_type = j.key_type`)
	var near int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE current_not_after < now() + interval '14 days'`).Scan(&near); err != nil || near != 200 {
		t.Fatalf("jobs near their end: %d, %v; want 200 (the validity copied to the jobs)", near, err)
	}
	if _, err := c.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	bound := time.Now().Add(14 * 24 * time.Hour)
	plan := strings.Join(planLines(t, c, "EXPLAIN "+sqlstore.ExpiringCertificatesForTest.Text(sqlstore.Postgres), "", "", 1000, "", bound), "\n")
	if !strings.Contains(plan, "jobs_expiry") || strings.Contains(plan, "Seq Scan on jobs") {
		t.Errorf("want a range of jobs_expiry, no scan of the jobs:\n%s", plan)
	}
}
