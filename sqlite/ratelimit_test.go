package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

func TestStoreRateLimitContract(t *testing.T) {
	storetest.RunRateLimit(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}

// TestReserveTwoStoresOneFile: two Stores on one file (as two
// processes would have, e.g. the daemon and `certfleet issue`) never take
// more than the limit between them.
func TestReserveTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	a, b := mustOpen(t, path), mustOpen(t, path)
	storetest.RunReserveConcurrent(t, []certfleet.RateLimitStore{a, b})
}
