package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
)

const keysTestCerts = `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
key_types = ["ecdsa-p256", "rsa2048"]
[[certificate]]
name = "mail"
identifiers = ["mail.certfleet.test"]
`

// writeKeysConfig writes writeConfig's config with state and, unless
// masterKey is "", master_key_file.
func writeKeysConfig(t *testing.T, dir string, ca interface{ DirectoryURL() string }, path, state, masterKey string, previous ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.Index(s, "[log]"); i >= 0 {
		s = s[i:]
	}
	head := fmt.Sprintf("state = %q\n", state)
	if masterKey != "" {
		head += fmt.Sprintf("master_key_file = %q\n", masterKey)
	}
	if len(previous) > 0 {
		head += fmt.Sprintf("previous_master_key_files = [%q]\n", previous[0])
	}
	if err := os.WriteFile(path, []byte(head+s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// secretsOf returns every private key the store holds (read through the
// store, so decrypted) and every key written to dir/live, each as its PEM
// and its DER.
func secretsOf(t *testing.T, dir string, st certfleet.Store) (pems [][]byte) {
	t.Helper()
	ctx := t.Context()
	isss, err := st.Issuances(ctx, certfleet.IssuanceFilter{})
	if err != nil || len(isss) < 3 {
		t.Fatalf("issuances: %d, %v", len(isss), err)
	}
	var ca string
	for _, iss := range isss {
		if len(iss.KeyPEM) == 0 {
			t.Fatalf("issuance %d has no key", iss.ID)
		}
		pems = append(pems, iss.KeyPEM)
		ca = iss.CA
	}
	acct, err := st.Account(ctx, ca, certfleet.DefaultAccount)
	if err != nil || len(acct.KeyPEM) == 0 {
		t.Fatalf("account of %s: %v", ca, err)
	}
	pems = append(pems, acct.KeyPEM)
	files, _ := filepath.Glob(filepath.Join(dir, "live", "*", "*", "privkey.pem"))
	more, _ := filepath.Glob(filepath.Join(dir, "live", "*", "privkey.pem"))
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, b)
	}
	if len(pems) < 7 { // 3 issuances + account + 3 files
		t.Fatalf("found %d keys, want 7", len(pems))
	}
	return pems
}

// leaks lists what of the keys appears in dump: a PEM private key header,
// a key's DER, or a line of its PEM's base64 body.
func leaks(dump []byte, pems [][]byte) []string {
	var found []string
	if bytes.Contains(dump, []byte("PRIVATE KEY")) {
		found = append(found, `"PRIVATE KEY" PEM header`)
	}
	for i, p := range pems {
		blk, _ := pem.Decode(p)
		if blk == nil {
			found = append(found, fmt.Sprintf("key %d is not PEM", i))
			continue
		}
		if bytes.Contains(dump, blk.Bytes) {
			found = append(found, fmt.Sprintf("DER of key %d", i))
		}
		for _, line := range bytes.Split(p, []byte("\n")) {
			if len(line) >= 32 && !bytes.HasPrefix(line, []byte("-----")) && bytes.Contains(dump, line) {
				found = append(found, fmt.Sprintf("base64 of key %d", i))
				break
			}
		}
	}
	return found
}

// sqliteDump is the raw bytes of the database file and its WAL and shm.
func sqliteDump(t *testing.T, db string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		b, err := os.ReadFile(db + suffix)
		if err == nil {
			all = append(all, b...)
		} else if suffix == "" {
			t.Fatal(err)
		}
	}
	return all
}

// pgDump is every text, bytea, json and varchar value of every table of the
// store's schema, as raw bytes.
func pgDump(t *testing.T, dsn string) []byte {
	t.Helper()
	ctx := t.Context()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND data_type IN ('bytea', 'text', 'character varying', 'json', 'jsonb')`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.column); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if rows.Err() != nil || len(cols) < 10 {
		t.Fatalf("columns: %d, %v", len(cols), rows.Err())
	}
	var all []byte
	for _, cl := range cols {
		q := fmt.Sprintf(`SELECT %s::bytea FROM %s WHERE %s IS NOT NULL`,
			pgx.Identifier{cl.column}.Sanitize(), pgx.Identifier{cl.table}.Sanitize(), pgx.Identifier{cl.column}.Sanitize())
		vals, err := c.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for vals.Next() {
			var b []byte
			if err := vals.Scan(&b); err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
			all = append(all, 0)
		}
		if err := vals.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return all
}

func generateKey(t *testing.T, path string) {
	t.Helper()
	if code, out, errOut := runCLI(t, "master-key", "generate", path); code != 0 || !strings.Contains(out, "wrote master key local:") {
		t.Fatalf("master-key generate: exit %d\n%s%s", code, out, errOut)
	}
}

func openForTest(t *testing.T, state, keyFile string) certfleet.Store {
	t.Helper()
	st, err := openStore(t.Context(), state, nil, config.MasterKey{File: keyFile})
	if err != nil {
		t.Fatalf("open store with %s: %v", keyFile, err)
	}
	return st
}

// TestKeysEncryptedAtRest issues real certificates (Pebble) through the CLI
// with a master key and dumps the whole database, SQLite file and WAL or
// every PostgreSQL value: no private key, in PEM, DER or base64, is in it.
// Then it rotates the master key and checks the store opens with the new key
// only, and that starting without a key, or with only the old one, is a
// clear error.
func TestKeysEncryptedAtRest(t *testing.T) {
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
			oldKey, newKey := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
			generateKey(t, oldKey)
			path := daemontest.WriteConfig(t, dir, ca, port, keysTestCerts)
			writeKeysConfig(t, dir, ca, path, state, oldKey)
			if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
				t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
			}
			st := openForTest(t, state, oldKey)
			pems := secretsOf(t, dir, st)
			st.Close()
			if found := leaks(dump(), pems); len(found) > 0 {
				t.Fatalf("the database holds private keys: %v", found)
			}

			// Rotation while the store has data; then the new key alone.
			generateKey(t, newKey)
			code, out, errOut := runCLI(t, "rotate-master-key", "-config", path, "-new", newKey)
			if code != 0 || !strings.Contains(out, "re-wrapped data key dek-") || !strings.Contains(out, "master_key_file = ") {
				t.Fatalf("rotate-master-key: exit %d\n%s%s", code, out, errOut)
			}
			writeKeysConfig(t, dir, ca, path, state, newKey)
			if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
				t.Fatalf("issue after rotation: exit %d\n%s%s", code, out, errOut)
			}
			st = openForTest(t, state, newKey)
			after := secretsOf(t, dir, st)
			st.Close()
			for i := range pems[:4] {
				if !bytes.Equal(pems[i], after[i]) {
					t.Errorf("key %d differs after rotation", i)
				}
			}
			if found := leaks(dump(), after); len(found) > 0 {
				t.Fatalf("after rotation the database holds private keys: %v", found)
			}

			// Only the old key: refused, naming the key that is needed.
			writeKeysConfig(t, dir, ca, path, state, oldKey)
			code, _, errOut = runCLI(t, "issue", "-config", path)
			if code == 0 || !strings.Contains(errOut, "is wrapped by master key local:") {
				t.Fatalf("issue with the old key after rotation: exit %d, want a clear error:\n%s", code, errOut)
			}
			// No key: refused, never a plaintext fallback.
			writeKeysConfig(t, dir, ca, path, state, "")
			code, _, errOut = runCLI(t, "issue", "-config", path)
			if code == 0 || !strings.Contains(errOut, "the store holds encrypted keys") || !strings.Contains(errOut, "master_key_file") {
				t.Fatalf("issue without a master key over a sealed store: exit %d, want a clear error:\n%s", code, errOut)
			}
			// The environment variable stands in for the file.
			text, err := os.ReadFile(newKey)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv(daemon.MasterKeyEnv, strings.TrimSpace(string(text)))
			if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
				t.Fatalf("issue with %s: exit %d\n%s%s", daemon.MasterKeyEnv, code, out, errOut)
			}
		})
	}
}

// TestDumpCheckFindsPlaintextKeys is the control of TestKeysEncryptedAtRest:
// without a master key the same dump does show the keys, and the start-up
// warns that they are unencrypted.
func TestDumpCheckFindsPlaintextKeys(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	path := daemontest.WriteConfig(t, dir, ca, port, keysTestCerts)
	writeKeysConfig(t, dir, ca, path, state, "")
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "private keys are stored unencrypted: set master_key_file (or CERTFLEET_MASTER_KEY)") {
		t.Errorf("no warning about unencrypted keys:\n%s", errOut)
	}
	st := openForTest(t, state, "")
	pems := secretsOf(t, dir, st)
	st.Close()
	found := strings.Join(leaks(sqliteDump(t, state), pems), ", ")
	for i := range pems {
		if !strings.Contains(found, fmt.Sprintf("DER of key %d,", i)+"") && !strings.HasSuffix(found, fmt.Sprintf("DER of key %d", i)) &&
			!strings.Contains(found, fmt.Sprintf("base64 of key %d", i)) {
			t.Errorf("the dump check misses key %d in a plaintext store (found: %s)", i, found)
		}
	}
}

// TestDemoEncryptsKeys: the quickstart makes a master key (mode 0600) and
// its database holds no readable private key.
func TestDemoEncryptsKeys(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "demo", "--once", "--dir", dir); code != 0 {
		t.Fatalf("demo exit %d\n%s%s", code, out, errOut)
	}
	fi, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key: %v, %v; want mode 0600", fi, err)
	}
	db := filepath.Join(dir, "certfleet.db")
	st := openForTest(t, db, filepath.Join(dir, "master.key"))
	pems := secretsOf(t, dir, st)
	st.Close()
	if found := leaks(sqliteDump(t, db), pems); len(found) > 0 {
		t.Fatalf("the demo's database holds private keys: %v", found)
	}
}

// TestRotateWithPreviousKeys follows the documented procedure: both keys in
// the config (new as master_key_file, old as previous), rotate without -new,
// then the new key alone.
func TestRotateWithPreviousKeys(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	oldKey, newKey := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	generateKey(t, oldKey)
	generateKey(t, newKey)
	path := daemontest.WriteConfig(t, dir, ca, port, keysTestCerts)
	writeKeysConfig(t, dir, ca, path, state, oldKey)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	writeKeysConfig(t, dir, ca, path, state, newKey, oldKey)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue with both keys: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "rotate-master-key", "-config", path)
	if code != 0 || !strings.Contains(out, "re-wrapped data key dek-") || !strings.Contains(out, fmt.Sprintf("master_key_file = %q", newKey)) {
		t.Fatalf("rotate-master-key: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "rotate-master-key", "-config", path); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second rotate-master-key: exit %d\n%s", code, out)
	}
	writeKeysConfig(t, dir, ca, path, state, newKey)
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue with the new key only: exit %d\n%s%s", code, out, errOut)
	}
}
