package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/sqlstore"
)

var _ sqlstore.Compacter = (*db)(nil)

// Compact implements sqlstore.Compacter: VACUUM FULL rewrites each table
// (and its TOAST table and indexes) into new files and removes the old
// ones, so dead tuples holding values rows had before are gone from the
// table's files. It takes an ACCESS EXCLUSIVE lock on each table while it
// runs (seconds for 100,000 certificates). PostgreSQL's WAL (pg_wal) still
// holds the records of the earlier writes until its segments are recycled
// and overwritten; that is the server's business and beyond a client's
// reach (docs/keys-at-rest.md).
func (d *db) Compact(ctx context.Context, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	ids := make([]string, len(tables))
	for i, t := range tables {
		ids[i] = pgx.Identifier{t}.Sanitize()
	}
	q := "VACUUM (FULL) " + strings.Join(ids, ", ")
	if _, err := d.pool.Exec(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", q, translate(err))
	}
	return nil
}
