package postgres_test

import (
	"testing"

	"github.com/certfleet/certfleet/internal/pgtest"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreAlertsContract(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}

// TestMigrationBelowNewestApplied: a migration missing from a database
// whose schema already has a newer one (migrations made on parallel
// branches, landing out of order) is applied at the next open.
func TestMigrationBelowNewestApplied(t *testing.T) {
	dsn := pgtest.DSN(t)
	mustOpen(t, dsn).Close()
	db := rawConn(t, dsn)
	if _, err := db.Exec(t.Context(), `DROP TABLE agent_reports; DELETE FROM schema_migrations WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dsn)
	if _, err := s.AgentReports(t.Context(), certfleet.AgentReportFilter{}); err != nil {
		t.Fatalf("migration 3 not applied again: %v", err)
	}
	var n int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations WHERE version = 3`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema_migrations rows of version 3 = %d, %v", n, err)
	}
}
