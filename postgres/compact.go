package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/sqlstore"
)

var _ sqlstore.Compacter = (*db)(nil)

// compactWait bounds how long Compact waits for older snapshots to end (a
// variable for this package's tests).
var compactWait = 2 * time.Minute

// qOlderSnapshots counts what keeps row versions older than transaction $1
// visible, so that VACUUM FULL would copy them into the new files instead
// of dropping them: sessions whose snapshot or transaction predates $1,
// prepared transactions, replication slots. Sessions and prepared
// transactions of every database count, not only of this one: VACUUM FULL
// (PostgreSQL 15) keeps the row versions a transaction of another database
// on the server could see ("dead row versions cannot be removed yet"),
// where a plain VACUUM would remove them; counting only this database's,
// Compact reported success with the plaintext still in the table's new
// files (TestCompactWaitsForOtherDatabases). (Without superuser or
// pg_read_all_stats, other roles' sessions show no backend_xmin and cannot
// be counted; docs/keys-at-rest.md.)
const qOlderSnapshots = `SELECT
	(SELECT count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid()
		AND ((backend_xmin IS NOT NULL AND age(backend_xmin) > age($1::text::xid))
		  OR (backend_xid IS NOT NULL AND age(backend_xid) > age($1::text::xid))))
	+ (SELECT count(*) FROM pg_prepared_xacts WHERE age(transaction) > age($1::text::xid))
	+ (SELECT count(*) FROM pg_replication_slots WHERE xmin IS NOT NULL AND age(xmin) > age($1::text::xid))`

// Compact implements sqlstore.Compacter: VACUUM FULL rewrites each table
// (and its TOAST table and indexes) into new files and removes the old
// ones. It first waits (up to compactWait) until no snapshot older than
// now remains in the database: VACUUM FULL keeps every row version some
// open transaction may still see, and copies it into the new files — an
// idle-in-transaction session elsewhere would keep the plaintext the seal
// pass replaced. Past the wait it fails, naming the cause; the compaction
// stays owed and runs at the next start. It takes an ACCESS EXCLUSIVE lock
// on each table while it runs. PostgreSQL's WAL (pg_wal) still holds the
// records of the earlier writes until its segments are recycled and
// overwritten; that is the server's business and beyond a client's reach
// (docs/keys-at-rest.md).
func (d *db) Compact(ctx context.Context, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	var horizon string
	if err := d.pool.QueryRow(ctx, `SELECT pg_current_xact_id()::xid::text`).Scan(&horizon); err != nil {
		return fmt.Errorf("read the current transaction: %w", translate(err))
	}
	deadline := time.Now().Add(compactWait)
	for {
		var n int
		if err := d.pool.QueryRow(ctx, qOlderSnapshots, horizon).Scan(&n); err != nil {
			return fmt.Errorf("look for older snapshots: %w", translate(err))
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sessions, prepared transactions or replication slots of this server still see rows as they were before the keys were sealed "+
				"(see pg_stat_activity.backend_xmin, pg_prepared_xacts, pg_replication_slots); VACUUM FULL would keep those row versions. "+
				"End them (long or idle-in-transaction sessions) and start certfleet again: the compaction stays owed until it succeeds", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
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
