// Package pgtest gives tests a fresh, empty PostgreSQL schema on the server
// named by the CERTFLEET_TEST_POSTGRES environment variable, for example
//
//	CERTFLEET_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// When the variable is unset the test is skipped with a message that names
// it, unless CI is set: then a missing or unreachable server fails the test,
// so CI cannot pass by silently skipping the PostgreSQL tests.
//
// Each DSN returned selects its own schema through search_path, so tests may
// run in parallel on one database; the schema is dropped when the test ends.
// Import it from _test.go files only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "CERTFLEET_TEST_POSTGRES"

// ServerDSN returns the DSN of the test server, skipping (or, under CI,
// failing) t when there is none.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		msg := "PostgreSQL tests need a server: set " + EnvDSN +
			"='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' (any database the user may create schemas in)"
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s is not: %s", EnvDSN, msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	if !strings.Contains(dsn, "://") {
		t.Fatalf("%s must be a postgres:// URL, got a key=value DSN", EnvDSN)
	}
	return dsn
}

// Database creates a new empty database on the test server and returns a
// DSN for it; the database is dropped when t ends. Use it instead of DSN
// for a test that needs what PostgreSQL keeps per database, not per
// schema, to itself: VACUUM FULL keeps every row version a session of the
// database may still see, so a seal pass's compaction waits for the
// transactions open in every schema of the database; with the schemas of
// DSN, other tests' sessions held it up past its wait under load.
func Database(t testing.TB) string {
	t.Helper()
	server := ServerDSN(t)
	name := "certfleet_test_" + randomHex()
	adminExec(t, server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0")
	t.Cleanup(func() {
		adminExec(t, server, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", EnvDSN, err)
	}
	u.Path = "/" + name
	return u.String()
}

// adminExec runs stmt on the test server's database, failing t with what
// to check when the server cannot be reached.
func adminExec(t testing.TB, server, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: cannot reach the PostgreSQL server of %s: %v\n"+
			"check that it runs (pg_isready -h HOST -p PORT; on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
			EnvDSN, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("pgtest: %s: %v", stmt, err)
	}
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DSN creates a new empty schema on the test server and returns a DSN whose
// connections use it (search_path). The schema is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	server := ServerDSN(t)
	schema := "certfleet_test_" + randomHex()
	adminExec(t, server, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { adminExec(t, server, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE") })
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
