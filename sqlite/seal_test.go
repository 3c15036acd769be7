package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

func openSealed(t testing.TB, path string, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (*sqlite.Store, error) {
	t.Helper()
	s := sqlite.New(path)
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = kek, prev, storetest.MasterKeyHint
	if err := s.Open(t.Context()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

// newSealedTestStore opens a store with a new master key on a new file,
// closed when t ends.
func newSealedTestStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := openSealed(t, filepath.Join(t.TempDir(), "certfleet.db"), sealtest.NewKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSeal runs the contract of sealing at rest on SQLite.
func TestSeal(t *testing.T) {
	storetest.RunSeal(t, func(t *testing.T) storetest.SealOpener {
		path := filepath.Join(t.TempDir(), "certfleet.db")
		return func(t *testing.T, kek seal.KeyWrapper, prev ...seal.KeyWrapper) (storetest.SealedStore, error) {
			s, err := openSealed(t, path, kek, prev...)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}
