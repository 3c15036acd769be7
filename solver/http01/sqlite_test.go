package http01_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

// newTestSQLite opens the SQLite database at path, closed when the test ends.
func newTestSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestInstancesShareSQLite: two certfleet instances on one database file
// (each with its own store handle and token cache), as behind a load
// balancer. A token one presents is answered by the other; its CleanUp
// withdraws it from both.
func TestInstancesShareSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	storeA, storeB := newTestSQLite(t, path), newTestSQLite(t, path)
	tokensA, tokensB := new(http01.Tokens), new(http01.Tokens)
	solverA := &http01.Solver{Store: storeA, Tokens: tokensA}
	baseA := newTestResponder(t, &http01.Responder{Store: storeA, Tokens: tokensA})
	baseB := newTestResponder(t, &http01.Responder{Store: storeB, Tokens: tokensB})

	chal := testChallenge(testToken, testKeyAuth)
	if err := solverA.Present(t.Context(), chal); err != nil {
		t.Fatalf("Present: %v", err)
	}
	for name, base := range map[string]string{"presenting instance": baseA, "other instance": baseB} {
		code, body, _ := mustGet(t, base+http01.PathPrefix+testToken, "example.org")
		if code != http.StatusOK || body != testKeyAuth {
			t.Errorf("%s: got %d %q, want 200 %q", name, code, body, testKeyAuth)
		}
	}
	if err := solverA.CleanUp(t.Context(), chal); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	for name, base := range map[string]string{"presenting instance": baseA, "other instance": baseB} {
		if code, _, _ := mustGet(t, base+http01.PathPrefix+testToken, ""); code != http.StatusNotFound {
			t.Errorf("%s after CleanUp: status %d, want 404", name, code)
		}
	}
}
