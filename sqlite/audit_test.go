package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreAuditContract(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) storetest.AuditStore { return newTestStore(t) },
		func(t *testing.T, s storetest.AuditStore, stmt string) error {
			_, err := rawDB(t, s.(*sqlite.Store).Path).ExecContext(t.Context(), stmt)
			return err
		})
}
