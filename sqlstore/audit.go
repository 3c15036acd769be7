package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
)

var _ certfleet.AuditStore = (*Store)(nil)

const eventColumns = `id, at, kind, actor, remote, certificate, key_type, serial, issuance_id, reason, detail`

var (
	qInsertEvent = SQL(`INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`)
	qEventCursor = SQL(`SELECT at FROM audit_events WHERE id = $1`)
)

// RecordEvent implements certfleet.AuditStore: one INSERT into the
// append-only audit_events table (the drivers' migrations/0005_audit.sql).
func (s *Store) RecordEvent(ctx context.Context, e certfleet.Event) error {
	e, err := certfleet.PrepareEvent(e, s.now())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx Tx) error { return insertEvent(tx, e) })
}

// insertEvent appends a prepared event inside tx.
func insertEvent(tx Tx, e certfleet.Event) error {
	_, err := tx.Exec(qInsertEvent, e.At, e.Kind, e.Actor, certfleet.ActorType(e.Actor), e.Remote,
		e.Certificate, string(e.KeyType), e.Serial, e.IssuanceID, e.Reason, e.Detail)
	if err != nil {
		return fmt.Errorf("record %s event: %w", e.Kind, err)
	}
	return nil
}

// Events implements certfleet.AuditStore. Each filter is served by an index
// of 0005_audit.sql in (at, id) order (the drivers' TestEventQueryPlans).
// The cursor's time and the page are two statements outside a transaction:
// the trail is append-only, so the cursor's time cannot change between
// them.
func (s *Store) Events(ctx context.Context, f certfleet.EventFilter) ([]certfleet.Event, error) {
	f, err := certfleet.CheckEventFilter(f)
	if err != nil {
		return nil, err
	}
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	var cursorAt time.Time
	if f.BeforeID > 0 {
		err := q.QueryRow(qEventCursor, f.BeforeID).Scan(&cursorAt)
		if noRows(err) {
			return nil, noSuchEventCursor(f.BeforeID)
		} else if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
	}
	stmt, args := EventQuery(f, cursorAt)
	rows, err := q.Query(stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	out := []certfleet.Event{}
	// One row buffer for the page: Scan sets every field but KeyType,
	// which is set from kt; a page of events costs no allocation per row
	// beyond its strings.
	var (
		e    certfleet.Event
		kt   string
		dest = []any{&e.ID, &e.At, &e.Kind, &e.Actor, &e.Remote, &e.Certificate, &kt, &e.Serial, &e.IssuanceID, &e.Reason, &e.Detail}
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.KeyType = certfleet.KeyType(kt)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// EventQuery returns the SELECT that Events runs for f (checked with
// certfleet.CheckEventFilter) and its arguments; cursorAt is the time of
// event f.BeforeID, used when f.BeforeID > 0. It is exported for the
// drivers' query-plan tests, which EXPLAIN it; use Events to list events.
//
// Each filter shape is one index of 0005_audit.sql read in (at, id) order:
// the equality filter that leads the WHERE clause picks it, certificate,
// then actor, then kind, then actor type, else (at, id) alone.
func EventQuery(f certfleet.EventFilter, cursorAt time.Time) (Q, []any) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Certificate != "" {
		where = append(where, "certificate = "+arg(f.Certificate))
	}
	switch {
	case f.Actor == "":
	case f.ActorPrefix():
		// "token:" is exactly actor_type = 'token'. A longer prefix
		// ("config:/etc/") checks the rest too; the bare case leaves it
		// out, as PostgreSQL's planner would misjudge its selectivity.
		typ := certfleet.ActorType(f.Actor)
		where = append(where, "actor_type = "+arg(typ))
		if f.Actor != typ+":" {
			where = append(where, "substr(actor, 1, "+arg(utf8.RuneCountInString(f.Actor))+") = "+arg(f.Actor))
		}
	default:
		where = append(where, "actor = "+arg(f.Actor))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(f.Kind))
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < "+arg(f.Until))
	}
	if f.BeforeID > 0 {
		where = append(where, "(at, id) < ("+arg(cursorAt)+", "+arg(f.BeforeID)+")")
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ` + arg(f.Limit)
	return SQL(q), args
}

// noSuchEventCursor is the error of an event filter whose before_id names
// no event.
func noSuchEventCursor(id int64) error {
	return certfleet.Errorf(certfleet.EINVALID, "event filter: before_id %d: no such event (use the id of the last event of the previous page)", id)
}
