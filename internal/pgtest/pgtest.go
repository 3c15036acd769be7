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

// DSN creates a new empty schema on the test server and returns a DSN whose
// connections use it (search_path). The schema is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	server := ServerDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: cannot reach the PostgreSQL server of %s: %v\n"+
			"check that it runs (pg_isready -h HOST -p PORT; on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
			EnvDSN, err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 8)
	rand.Read(b)
	schema := "certfleet_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
