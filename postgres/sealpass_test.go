package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/seal/sealtest"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/certfleet/certfleet/storetest"
)

func openSealPass(t *testing.T, dsn string, kek seal.KeyWrapper) storetest.SealPass {
	t.Helper()
	s := postgres.New(dsn)
	s.KEK, s.MasterKeyHint = kek, "file: test.key"
	if err := s.Open(t.Context()); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newKEKWrapper(t *testing.T) seal.KeyWrapper { return sealtest.NewKEK(t) }

// TestSealPass runs the seal pass's contract on PostgreSQL.
func TestSealPass(t *testing.T) {
	dsn := pgtest.DSN(t)
	storetest.RunSealPass(t, func(t *testing.T, kek seal.KeyWrapper) storetest.SealPass { return openSealPass(t, dsn, kek) }, newKEKWrapper)
}

// TestSealPassKilledResumes: a pass killed (SIGKILL) in its middle resumes
// (storetest.RunSealPassKilled).
func TestSealPassKilledResumes(t *testing.T) {
	storetest.RunSealPassKilled(t, func(t *testing.T) string { return pgtest.DSN(t) }, openSealPass, pgLeaks)
}

// pgLeaks looks for the keys of fk, and for any PEM private key header, in
// two places: every value of every table of the store's schema, read over
// SQL; and, after a CHECKPOINT, the on-disk files of the tables that hold
// keys (heap, TOAST and indexes, by pg_relation_filepath under
// data_directory) when this process can read them (the tests run as root on
// the database's host; elsewhere the SQL check stands alone, and the test
// logs that it skipped the files).
func pgLeaks(t *testing.T, dsn string, fk storetest.FilledKeys) []string {
	t.Helper()
	ctx := t.Context()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var found []string
	look := func(where string, b []byte) {
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			found = append(found, "a PRIVATE KEY header in "+where)
		}
		for id, k := range fk.Issuances {
			if bytes.Contains(b, bytes.Split(k, []byte("\n"))[1]) {
				found = append(found, fmt.Sprintf("issuance %d's key in %s", id, where))
				return
			}
		}
	}
	// Over SQL: every bytea and text value of the schema.
	rows, err := c.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND data_type IN ('bytea', 'text', 'character varying', 'json', 'jsonb')`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var cl col
		if err := rows.Scan(&cl.table, &cl.column); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, cl)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for _, cl := range cols {
		q := fmt.Sprintf(`SELECT coalesce(string_agg(%s::bytea, '\x00'::bytea), ''::bytea) FROM %s`,
			pgx.Identifier{cl.column}.Sanitize(), pgx.Identifier{cl.table}.Sanitize())
		var b []byte
		if err := c.QueryRow(ctx, q).Scan(&b); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		look("column "+cl.table+"."+cl.column, b)
	}
	// On disk: the files of the tables that held keys.
	var dataDir string
	if err := c.QueryRow(ctx, `SHOW data_directory`).Scan(&dataDir); err != nil {
		t.Logf("cannot ask for data_directory (%v): the check of PostgreSQL's files is skipped, the SQL check stands", err)
		return found
	}
	if _, err := c.Exec(ctx, `CHECKPOINT`); err != nil {
		t.Logf("CHECKPOINT refused (%v): the check of PostgreSQL's files is skipped, the SQL check stands", err)
		return found
	}
	frows, err := c.Query(ctx, `SELECT r.relname, pg_relation_filepath(r.oid) FROM pg_class r
		WHERE r.oid IN (
			SELECT c.oid FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ('issuances', 'jobs', 'accounts')
			UNION SELECT c.reltoastrelid FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ('issuances', 'jobs', 'accounts') AND c.reltoastrelid <> 0
			UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ('issuances', 'jobs', 'accounts'))`)
	if err != nil {
		t.Fatal(err)
	}
	type rel struct{ name, path string }
	var rels []rel
	for frows.Next() {
		var r rel
		if err := frows.Scan(&r.name, &r.path); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, r)
	}
	if frows.Err() != nil || len(rels) < 3 {
		t.Fatalf("relation files: %v, %v", rels, frows.Err())
	}
	read := 0
	for _, r := range rels {
		matches, _ := filepath.Glob(filepath.Join(dataDir, r.path) + "*") // segments .1, .2, and the fsm/vm forks
		for _, f := range matches {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Logf("cannot read %s (%v): the check of PostgreSQL's files is skipped, the SQL check stands", f, err)
				return found
			}
			read++
			look("file "+f+" ("+r.name+")", b)
		}
	}
	if read == 0 {
		t.Fatalf("no relation file found under %s", dataDir)
	}
	return found
}

// TestSealPassLeavesNoPlaintextInFiles is issue 17's finding on PostgreSQL:
// a store filled without a master key, then opened with one and sealed,
// holds no private key in any value (SQL) nor in the files of its tables
// (after VACUUM FULL and a CHECKPOINT). Before the pass the same check
// finds the keys in both (the control).
func TestSealPassLeavesNoPlaintextInFiles(t *testing.T) {
	dsn := pgtest.DSN(t)
	plain := openSealPass(t, dsn, nil)
	fk := storetest.FillPlaintext(t, plain, 40)
	before := pgLeaks(t, dsn, fk)
	var inFiles, inSQL bool
	for _, f := range before {
		inFiles = inFiles || bytes.Contains([]byte(f), []byte(" in file "))
		inSQL = inSQL || bytes.Contains([]byte(f), []byte(" in column "))
	}
	if !inSQL || !inFiles {
		t.Fatalf("control: the plaintext store shows %v; want keys in columns and in files", before)
	}
	plain.Close()

	s := openSealPass(t, dsn, sealtest.NewKEK(t))
	res, err := s.SealPlaintextKeys(t.Context(), sqlstore.SealPassOptions{Batch: 7})
	if err != nil || res.Total() != fk.Count || !res.Compacted {
		t.Fatalf("SealPlaintextKeys = %+v, %v", res, err)
	}
	if found := pgLeaks(t, dsn, fk); len(found) > 0 {
		t.Fatalf("after sealing, the database still holds: %v", found)
	}
	storetest.CheckKeys(t, s, fk)
}

// TestCompactWaitsForOtherDatabases: a transaction open in another
// database of the server keeps VACUUM FULL from dropping the row versions
// the seal pass replaced. Compact waited only for the sessions of its own
// database, so it reported the database compacted while the plaintext
// keys stayed in the tables' new files (the seal pass tests failed under
// load when another test's or benchmark's database had a transaction
// open). Now it waits for it, then fails naming the cause, and compacts
// once the transaction has ended.
func TestCompactWaitsForOtherDatabases(t *testing.T) {
	dsn := pgtest.DSN(t)
	plain := openSealPass(t, dsn, nil)
	fk := storetest.FillPlaintext(t, plain, 10)
	plain.Close()

	ctx := t.Context()
	other, err := pgx.Connect(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}

	postgres.SetCompactWaitForTest(t, 2*time.Second)
	s := openSealPass(t, dsn, sealtest.NewKEK(t))
	res, err := s.SealPlaintextKeys(ctx, sqlstore.SealPassOptions{})
	if err == nil || res.Compacted || !strings.Contains(err.Error(), "still see rows") {
		found := pgLeaks(t, dsn, fk)
		t.Fatalf("with a transaction open in another database: %+v, %v; want the compaction refused (the files hold %v)", res, err, found)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	postgres.SetCompactWaitForTest(t, 2*time.Minute)
	res, err = s.SealPlaintextKeys(ctx, sqlstore.SealPassOptions{})
	if err != nil || !res.Compacted {
		t.Fatalf("after the transaction ended: %+v, %v; want the owed compaction done", res, err)
	}
	storetest.CheckKeys(t, s, fk)
	if found := pgLeaks(t, dsn, fk); len(found) > 0 {
		t.Fatalf("after the compaction the database still holds: %v", found)
	}
}
