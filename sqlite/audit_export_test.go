package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
)

// eventQuery returns the page query Store.Events runs for f (checked), in
// SQLite's form and with its arguments as this driver binds them, the
// cursor's time read on conn: what TestEventQueryPlans EXPLAINs.
func eventQuery(ctx context.Context, conn *sql.Conn, f certfleet.EventFilter) (string, []any, error) {
	var cursorAt time.Time
	if f.BeforeID > 0 {
		var at int64
		if err := conn.QueryRowContext(ctx, `SELECT at FROM audit_events WHERE id = $1`, f.BeforeID).Scan(&at); err != nil {
			return "", nil, err
		}
		cursorAt = time.UnixMicro(at).UTC()
	}
	q, args := sqlstore.EventQuery(f, cursorAt)
	return q.Text(sqlstore.SQLite), encodeArgs(args), nil
}
