package sqlite_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/storetest"
)

func sealPassOpener(path string) storetest.SealPassOpener {
	return func(t *testing.T, kek seal.KeyWrapper) storetest.SealPass {
		t.Helper()
		s := sqlite.New(path)
		s.KEK, s.MasterKeyHint = kek, "file: test.key"
		if err := s.Open(t.Context()); err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func newKEKWrapper(t *testing.T) seal.KeyWrapper { return sealtest.NewKEK(t) }

// TestSealPass runs the seal pass's contract on SQLite.
func TestSealPass(t *testing.T) {
	storetest.RunSealPass(t, sealPassOpener(filepath.Join(t.TempDir(), "certfleet.db")), newKEKWrapper)
}

// fileLeaks lists which of the keys (or a PEM private key header) appear in
// the database file or its WAL.
func fileLeaks(t *testing.T, path string, fk storetest.FilledKeys) []string {
	t.Helper()
	var found []string
	for _, suffix := range []string{"", "-wal", "-journal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			found = append(found, "a PRIVATE KEY header in "+filepath.Base(path+suffix))
		}
		for id, k := range fk.Issuances {
			body := bytes.Split(k, []byte("\n"))[1]
			if bytes.Contains(b, body) {
				found = append(found, fmt.Sprintf("issuance %d's key in %s", id, filepath.Base(path+suffix)))
			}
		}
	}
	return found
}

// TestSealPassLeavesNoPlaintextInFiles is issue 17's finding on SQLite: a
// store filled without a master key, then opened with one and sealed,
// holds no private key in its file or its WAL — checked while the store is
// still open, so the WAL is the live one. Before the pass the same check
// finds the keys (the control).
func TestSealPassLeavesNoPlaintextInFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	open := sealPassOpener(path)
	plain := open(t, nil)
	fk := storetest.FillPlaintext(t, plain, 40)
	if found := fileLeaks(t, path, fk); len(found) < len(fk.Issuances) {
		t.Fatalf("control: the plaintext store shows only %d leaks (%v), want every key", len(found), found)
	}
	plain.Close()

	s := open(t, sealtest.NewKEK(t))
	res, err := s.SealPlaintextKeys(t.Context(), sqlstore.SealPassOptions{Batch: 7})
	if err != nil || res.Total() != fk.Count || !res.Compacted {
		t.Fatalf("SealPlaintextKeys = %+v, %v", res, err)
	}
	if found := fileLeaks(t, path, fk); len(found) > 0 {
		t.Fatalf("after sealing, the database files still hold: %v", found)
	}
	storetest.CheckKeys(t, s, fk)
}

// TestSealPassKilledResumes: a pass killed (SIGKILL) in its middle
// resumes (storetest.RunSealPassKilled).
func TestSealPassKilledResumes(t *testing.T) {
	storetest.RunSealPassKilled(t,
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "certfleet.db") },
		func(t *testing.T, path string, kek seal.KeyWrapper) storetest.SealPass {
			return sealPassOpener(path)(t, kek)
		},
		fileLeaks)
}
