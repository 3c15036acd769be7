package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/jackc/pgx/v5"
)

// migrationFS holds the schema migrations. A file is named NNNN_what.sql;
// NNNN is its version. Released migrations are never edited: a change to the
// schema is a new file with the next version.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// lockMigrate is the first key of the transaction-scoped advisory lock taken
// around migrations (the second is the schema's hash, so databases with one
// certfleet schema each do not wait for each other). Ours: "cf" in ASCII,
// then 1. The next key, 0x6366_0002, serialises the writes of specs
// (package sqlstore, lockSpecsKey).
const lockMigrate = 0x6366_0001

// migrations returns the embedded migrations in version order.
func migrations() ([]sqlstore.Migration, error) {
	return sqlstore.Migrations(migrationFS, "migrations/*.sql")
}

// LatestVersion is the schema version this code migrates to.
func LatestVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// SchemaVersion returns the schema version of the open database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	if s.pool == nil {
		return 0, errNotOpen
	}
	var v *int
	if err := s.pool.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", translate(err))
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// migrate applies the pending migrations in one transaction that holds an
// advisory lock: a second instance starting at the same moment waits for
// the first, then finds nothing to do. DDL is transactional in PostgreSQL,
// so a crash leaves the schema at its old version. It refuses a database
// whose schema is newer than the newest embedded migration, and returns the
// number of migrations applied.
func (s *Store) migrate(ctx context.Context) (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	latest := ms[len(ms)-1].Version
	applied := 0
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		applied = 0
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, lockMigrate); err != nil {
			return fmt.Errorf("take migration lock: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", translate(err))
		}
		var current *int
		if err := tx.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", translate(err))
		}
		cur := 0
		if current != nil {
			cur = *current
		}
		if cur > latest {
			return certfleet.Errorf(certfleet.EINVALID,
				"database schema version %d is newer than this certfleet supports (%d): use a newer certfleet", cur, latest)
		}
		// Every embedded migration not yet recorded is applied, in
		// order, even one below the newest recorded: migrations made on
		// parallel branches may land out of order.
		done := map[int]bool{}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema versions: %w", translate(err))
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("read schema versions: %w", translate(err))
		}
		for _, v := range versions {
			done[v] = true
		}
		for _, m := range ms {
			if done[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, translate(err))
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, s.now()); err != nil {
				return fmt.Errorf("record %s: %w", m.Name, translate(err))
			}
			applied++
		}
		return nil
	})
	if err != nil {
		return 0, translate(err)
	}
	if applied > 0 {
		s.logger().Info("schema migrations applied", "count", applied, "version", latest, "schema", s.schema)
	}
	return applied, nil
}
