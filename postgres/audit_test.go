package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/storetest"
	"github.com/jackc/pgx/v5"
)

func TestStoreAuditContract(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) storetest.AuditStore { return newTestStore(t) },
		func(t *testing.T, s storetest.AuditStore, stmt string) error {
			c, err := pgx.Connect(t.Context(), s.(*postgres.Store).DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			_, err = c.Exec(t.Context(), stmt)
			return err
		})
}

// TestAuditTruncateRefused: PostgreSQL also refuses TRUNCATE of the trail
// (SQLite has no TRUNCATE).
func TestAuditTruncateRefused(t *testing.T) {
	s := newTestStore(t)
	c, err := pgx.Connect(t.Context(), s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, table := range []string{"audit_events", "key_reads"} {
		if _, err := c.Exec(t.Context(), "TRUNCATE "+table); err == nil {
			t.Errorf("TRUNCATE %s succeeded; want it refused", table)
		} else if !strings.Contains(err.Error(), "append-only") {
			t.Errorf("TRUNCATE %s: %v; want the trigger's append-only error", table, err)
		}
	}
}
