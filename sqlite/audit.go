package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
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

// eventQuery builds the SELECT for f (checked). The equality filter that
// leads the WHERE clause picks the index: certificate, then actor, then
// kind, then actor type, else (at, id) alone.
func eventQuery(ctx context.Context, conn *sql.Conn, f certfleet.EventFilter) (string, []any, error) {
	var (
		where []string
		args  []any
	)
	if f.Certificate != "" {
		where, args = append(where, "certificate = ?"), append(args, f.Certificate)
	}
	switch {
	case f.Actor == "":
	case f.ActorPrefix():
		// "token:" is exactly actor_type = 'token'; a longer prefix
		// ("config:/etc/") checks the rest too.
		typ := certfleet.ActorType(f.Actor)
		where, args = append(where, "actor_type = ?"), append(args, typ)
		if f.Actor != typ+":" {
			where = append(where, "substr(actor, 1, ?) = ?")
			args = append(args, utf8.RuneCountInString(f.Actor), f.Actor)
		}
	default:
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, tsReq(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, tsReq(f.Until))
	}
	if f.BeforeID > 0 {
		var at int64
		err := conn.QueryRowContext(ctx, `SELECT at FROM audit_events WHERE id = ?`, f.BeforeID).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, certfleet.Errorf(certfleet.EINVALID, "event filter: before_id %d: no such event (use the id of the last event of the previous page)", f.BeforeID)
		} else if err != nil {
			return "", nil, fmt.Errorf("list events: %w", translate(err))
		}
		where, args = append(where, "(at, id) < (?, ?)"), append(args, at, f.BeforeID)
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	return q, append(args, f.Limit), nil
}
