package tlsalpn01_test

import (
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/solver/tlsalpn01"
	"github.com/certfleet/certfleet/sqlite"
)

// TestInstancesShareSQLite: the instance that answers the CA is not the one
// that presented the challenge; they share one SQLite database file.
func TestInstancesShareSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	open := func() *sqlite.Store {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storeA, storeB := open(), open()
	addrB := newTestResponder(t, &tlsalpn01.Responder{Store: storeB})
	solverA := &tlsalpn01.Solver{Store: storeA}
	chal := testChallenge(mustIdentifier(t, "127.0.0.1"), testKeyAuth)
	if err := solverA.Present(t.Context(), chal); err != nil {
		t.Fatalf("Present: %v", err)
	}
	leaf, err := validate(t, addrB, "1.0.0.127.in-addr.arpa")
	if err != nil {
		t.Fatalf("handshake with the other instance: %v", err)
	}
	checkACMEIdentifier(t, leaf, testKeyAuth)
	if err := solverA.CleanUp(t.Context(), chal); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	if _, err := validate(t, addrB, "1.0.0.127.in-addr.arpa"); err == nil {
		t.Fatal("handshake after CleanUp succeeded, want failure")
	}
}
