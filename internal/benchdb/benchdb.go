// Package benchdb is the database side of the benchmark programs under
// internal/cmd: a fresh PostgreSQL schema for each run (NewSchema), and a
// sqlstore.DB that counts the write transactions and statements a store
// runs over it (Count).
//
// It is for those programs only. Tests get their databases from
// internal/pgtest (a fresh database or schema per test, skipped without a
// DSN); a daemon opens its store through package sqlite or postgres and
// counts nothing this way.
package benchdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/postgres"
)

// NewSchema creates a schema named certfleet_<program>_<12 hex digits> on
// the PostgreSQL server of the DSN server and returns a DSN that uses it
// (search_path set), and a function that drops the schema with everything
// in it. The connection that created the schema is held until drop, so the
// caller must call drop once the run is over.
func NewSchema(ctx context.Context, server, program string) (dsn string, drop func(), err error) {
	cfg, err := postgres.ParseDSN(server) // strips the pool_* parameters
	if err != nil {
		return "", nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return "", nil, fmt.Errorf("connect for a benchmark schema: %w", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "certfleet_" + program + "_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	drop = func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	}
	u, err := url.Parse(server)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}
