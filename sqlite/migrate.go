package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
)

// migrationFS holds the schema migrations. A file is named NNNN_what.sql;
// NNNN is its version. Released migrations are never edited: a change to the
// schema is a new file with the next version.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]sqlstore.Migration, error) {
	return sqlstore.Migrations(migrationFS, "migrations/*.sql")
}

// migrate applies the pending migrations in order, each in its own
// transaction together with its schema_migrations row, so a crash leaves the
// schema at some whole version. It refuses a database whose schema is newer
// than the newest embedded migration.
func (s *Store) migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].Version
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return translate(err)
	}
	current, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if current > latest {
		return certfleet.Errorf(certfleet.EINVALID,
			"database schema version %d is newer than this certfleet supports (%d): use a newer certfleet", current, latest)
	}
	// Every embedded migration not yet recorded is applied, in order, even
	// one below the newest recorded: migrations made on parallel branches
	// may land out of order. apply checks again under the write lock.
	done := map[int]bool{}
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema versions: %w", translate(err))
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema versions: %w", translate(err))
		}
		done[v] = true
	}
	if err := rows.Close(); err != nil {
		return translate(err)
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		if err := s.apply(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", translate(err))
	}
	return int(v.Int64), nil
}

func (s *Store) apply(ctx context.Context, db *sql.DB, m sqlstore.Migration) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: another process migrating waits
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback()
	// Another process may have applied it while we waited for the lock.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return translate(err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("apply %s: %w", m.Name, translate(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, s.now().UnixMicro()); err != nil {
		return fmt.Errorf("record %s: %w", m.Name, translate(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", m.Name, translate(err))
	}
	s.logger().Info("schema migration applied", "version", m.Version, "name", m.Name)
	return nil
}
