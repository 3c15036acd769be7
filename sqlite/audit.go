package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.AuditStore = (*Store)(nil)

const qInsertEvent = `INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const eventColumns = `id, at, kind, actor, remote, certificate, key_type, serial, issuance_id, reason, detail`

// RecordEvent implements certfleet.AuditStore: one INSERT into the
// append-only audit_events table (migrations/0005_audit.sql).
func (s *Store) RecordEvent(ctx context.Context, e certfleet.Event) error {
	e, err := certfleet.PrepareEvent(e, s.now())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *txn) error { return insertEvent(tx, e) })
}

// insertEvent appends a prepared event inside tx.
func insertEvent(tx *txn, e certfleet.Event) error {
	_, err := tx.exec(qInsertEvent, tsReq(e.At), e.Kind, e.Actor, certfleet.ActorType(e.Actor), e.Remote,
		e.Certificate, string(e.KeyType), e.Serial, e.IssuanceID, e.Reason, e.Detail)
	if err != nil {
		return fmt.Errorf("record %s event: %w", e.Kind, translate(err))
	}
	return nil
}

// Events implements certfleet.AuditStore. The query is built so that one
// index of 0005_audit.sql serves it in (at, id) order (see
// TestEventQueryPlans).
func (s *Store) Events(ctx context.Context, f certfleet.EventFilter) ([]certfleet.Event, error) {
	f, err := certfleet.CheckEventFilter(f)
	if err != nil {
		return nil, err
	}
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx) // one connection: the cursor lookup and the page see one snapshot
	if err != nil {
		return nil, translate(err)
	}
	defer conn.Close()
	query, args, err := eventQuery(ctx, conn, f)
	if err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", translate(err))
	}
	defer rows.Close()
	out := []certfleet.Event{}
	for rows.Next() {
		var (
			e  certfleet.Event
			at sql.NullInt64
			kt string
		)
		if err := rows.Scan(&e.ID, &at, &e.Kind, &e.Actor, &e.Remote, &e.Certificate, &kt, &e.Serial, &e.IssuanceID, &e.Reason, &e.Detail); err != nil {
			return nil, fmt.Errorf("list events: %w", translate(err))
		}
		e.At, e.KeyType = fromTS(at), certfleet.KeyType(kt)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", translate(err))
	}
	return out, nil
}

// eventQuery builds the SELECT for f (checked): storeutil.EventQuery, with
// the cursor's time read on conn.
func eventQuery(ctx context.Context, conn *sql.Conn, f certfleet.EventFilter) (string, []any, error) {
	var cursorAt int64
	if f.BeforeID > 0 {
		err := conn.QueryRowContext(ctx, `SELECT at FROM audit_events WHERE id = ?`, f.BeforeID).Scan(&cursorAt)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, storeutil.NoSuchEventCursor(f.BeforeID)
		} else if err != nil {
			return "", nil, fmt.Errorf("list events: %w", translate(err))
		}
	}
	q, args := storeutil.EventQuery(eventColumns, f, cursorAt,
		func(t time.Time) any { return tsReq(t) }, func(int) string { return "?" })
	return q, args, nil
}
