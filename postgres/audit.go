package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
	"github.com/jackc/pgx/v5"
)

var _ certfleet.AuditStore = (*Store)(nil)

const eventColumns = `id, at, kind, actor, remote, certificate, key_type, serial, issuance_id, reason, detail`

// RecordEvent implements certfleet.AuditStore: one INSERT into the
// append-only audit_events table (migrations/0005_audit.sql).
func (s *Store) RecordEvent(ctx context.Context, e certfleet.Event) error {
	e, err := certfleet.PrepareEvent(e, s.now())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error { return insertEvent(ctx, tx, e) })
}

// insertEvent appends a prepared event inside tx.
func insertEvent(ctx context.Context, tx pgx.Tx, e certfleet.Event) error {
	_, err := tx.Exec(ctx, `INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.At, e.Kind, e.Actor, certfleet.ActorType(e.Actor), e.Remote,
		e.Certificate, string(e.KeyType), e.Serial, e.IssuanceID, e.Reason, e.Detail)
	if err != nil {
		return fmt.Errorf("record %s event: %w", e.Kind, translate(err))
	}
	return nil
}

// Events implements certfleet.AuditStore. Each filter is served by an
// index of 0005_audit.sql in (at, id) order.
func (s *Store) Events(ctx context.Context, f certfleet.EventFilter) ([]certfleet.Event, error) {
	f, err := certfleet.CheckEventFilter(f)
	if err != nil {
		return nil, err
	}
	if s.pool == nil {
		return nil, errNotOpen
	}
	q, args, err := s.eventQuery(ctx, f)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", translate(err))
	}
	defer rows.Close()
	out := []certfleet.Event{}
	for rows.Next() {
		var (
			e  certfleet.Event
			kt string
		)
		if err := rows.Scan(&e.ID, &e.At, &e.Kind, &e.Actor, &e.Remote, &e.Certificate, &kt, &e.Serial, &e.IssuanceID, &e.Reason, &e.Detail); err != nil {
			return nil, fmt.Errorf("list events: %w", translate(err))
		}
		e.At, e.KeyType = e.At.UTC(), certfleet.KeyType(kt)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", translate(err))
	}
	return out, nil
}

// eventQuery builds the SELECT for f (checked): storeutil.EventQuery, with
// the cursor's time read first.
func (s *Store) eventQuery(ctx context.Context, f certfleet.EventFilter) (string, []any, error) {
	var cursorAt time.Time
	if f.BeforeID > 0 {
		err := s.pool.QueryRow(ctx, `SELECT at FROM audit_events WHERE id = $1`, f.BeforeID).Scan(&cursorAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil, storeutil.NoSuchEventCursor(f.BeforeID)
		} else if err != nil {
			return "", nil, fmt.Errorf("list events: %w", translate(err))
		}
	}
	q, args := storeutil.EventQuery(eventColumns, f, cursorAt,
		func(t time.Time) any { return t }, func(n int) string { return "$" + strconv.Itoa(n) })
	return q, args, nil
}
