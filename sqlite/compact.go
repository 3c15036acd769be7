package sqlite

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/sqlstore"
)

var _ sqlstore.Compacter = (*db)(nil)

// Compact implements sqlstore.Compacter for the whole file (SQLite cannot
// rewrite single tables): VACUUM rebuilds every page of the database, then
// a TRUNCATE checkpoint copies the rebuilt pages into the file and empties
// the WAL, so neither free pages of the file nor old frames of the WAL keep
// the values rows held before. It fails, rather than claiming success, when
// a reader's snapshot keeps the checkpoint from completing.
func (d *db) Compact(ctx context.Context, tables []string) error {
	if _, err := d.w.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("vacuum: %w", translate(err))
	}
	var busy, logFrames, checkpointed int
	if err := d.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("checkpoint the WAL: %w", translate(err))
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint the WAL: a reader kept it from completing (%d of %d frames copied); run again when the store is idle", checkpointed, logFrames)
	}
	return nil
}
