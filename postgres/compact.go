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
// of dropping them. It counts exactly what VACUUM FULL's horizon
// (PostgreSQL 15, GetOldestNonRemovableTransactionId) is made of:
//   - transactions of any database that are still running and older than
//     $1 (backend_xid): VACUUM FULL's own snapshot counts them as running,
//     so a transaction open in another database keeps the rows too
//     (TestCompactWaitsForOtherDatabases);
//   - snapshots older than $1 (backend_xmin) held by sessions of this
//     database, or of none (a walsender relaying a standby's
//     hot_standby_feedback holds back every database)
//     (TestCompactWaitsForSnapshotsOfItsDatabase);
//   - prepared transactions and replication slots older than $1.
//
// A snapshot held in another database without a transaction ID (a report,
// a backup, another package's test reading) keeps nothing here; waiting
// for it made Compact fail after its wait on a busy shared server
// (TestCompactIgnoresSnapshotsOfOtherDatabases, which also checks the
// files). backend_xid and backend_xmin are shown for every role's
// sessions, so no privilege is needed.
const qOlderSnapshots = `SELECT
	(SELECT count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid()
		AND ((backend_xid IS NOT NULL AND age(backend_xid) > age($1::text::xid))
		  OR (backend_xmin IS NOT NULL AND age(backend_xmin) > age($1::text::xid)
		      AND (datname = current_database() OR datid IS NULL))))
	+ (SELECT count(*) FROM pg_prepared_xacts WHERE age(transaction) > age($1::text::xid))
	+ (SELECT count(*) FROM pg_replication_slots WHERE xmin IS NOT NULL AND age(xmin) > age($1::text::xid))`

// Compact implements sqlstore.Compacter: VACUUM FULL rewrites each table
// (and its TOAST table and indexes) into new files and removes the old
// ones (the old main file is truncated at commit, so its pages are gone
// at once, not at the next checkpoint). It first waits (up to
// compactWait) until nothing older than now holds VACUUM FULL's horizon
// (qOlderSnapshots): VACUUM FULL keeps every row version some open
// transaction may still see, and copies it into the new files — an
// idle-in-transaction session would keep the plaintext the seal pass
// replaced. Past the wait it fails, naming the cause; the compaction
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
