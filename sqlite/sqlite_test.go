package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// newTestStore opens a store on a new file in t's temp dir, closed when t ends.
func newTestStore(t testing.TB) *sqlite.Store {
	t.Helper()
	return mustOpen(t, filepath.Join(t.TempDir(), "certfleet.db"))
}

func mustOpen(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}
