package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
)

// TestMigrateSealsExistingKeys is issue 17's finding: certificates issued
// (Pebble, through the CLI) without a master key, then a master key added
// and `certfleet migrate` run. Before, migrate said "schema up to date" and
// the certificate keys, archived keys and the ACME account key stayed
// plaintext in the database; now migrate (like every start with a master
// key) seals them, and the dump — the SQLite file with its WAL, or every
// value of every PostgreSQL table — holds none of them. (The PostgreSQL
// table files are checked by postgres.TestSealPassLeavesNoPlaintextInFiles.)
func TestMigrateSealsExistingKeys(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ca, port := daemontest.StartCA(t)
			dir := t.TempDir()
			state := filepath.Join(dir, "state.db")
			dump := func() []byte { return sqliteDump(t, state) }
			if backend == "postgres" {
				state = pgtest.DSN(t)
				dump = func() []byte { return pgDump(t, state) }
			}
			path := daemontest.WriteConfig(t, dir, ca, port, keysTestCerts)
			writeKeysConfig(t, dir, ca, path, state, "")
			if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
				t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
			}
			st := openForTest(t, state, "")
			pems := secretsOf(t, dir, st)
			st.Close()
			if found := leaks(dump(), pems); len(found) == 0 {
				t.Fatal("control: the store filled without a master key shows no key")
			}

			key := filepath.Join(dir, "master.key")
			generateKey(t, key)
			writeKeysConfig(t, dir, ca, path, state, key)
			code, out, errOut := runCLI(t, "migrate", "-config", path)
			if code != 0 {
				t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
			}
			if !strings.Contains(errOut, "private keys sealed and the database compacted") || strings.Contains(errOut, "NOT all encrypted") {
				t.Errorf("migrate's log does not report the keys sealed:\n%s", errOut)
			}
			if found := leaks(dump(), pems); len(found) > 0 {
				t.Fatalf("after migrate with a master key the database still holds private keys: %v", found)
			}
			// The keys read back through the store, which now needs the key.
			st = openForTest(t, state, key)
			after := secretsOf(t, dir, st)
			st.Close()
			for i := range pems {
				if string(pems[i]) != string(after[i]) {
					t.Errorf("key %d differs after sealing", i)
				}
			}
			code, _, errOut = runCLI(t, "issue", "-config", path)
			if code != 0 || strings.Contains(errOut, "NOT all encrypted") || strings.Contains(errOut, "sealing private keys") {
				t.Fatalf("issue after sealing: exit %d, want nothing left to seal:\n%s", code, errOut)
			}
		})
	}
}
