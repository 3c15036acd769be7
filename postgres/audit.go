package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
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

// eventQuery builds the SELECT for f (checked): equality filters and time
// bounds that one index of 0005_audit.sql serves in (at, id) order (see
// TestEventQueryPlans).
func (s *Store) eventQuery(ctx context.Context, f certfleet.EventFilter) (string, []any, error) {
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
		// out, as the planner would misjudge its selectivity.
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
		var at time.Time
		err := s.pool.QueryRow(ctx, `SELECT at FROM audit_events WHERE id = $1`, f.BeforeID).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil, certfleet.Errorf(certfleet.EINVALID, "event filter: before_id %d: no such event (use the id of the last event of the previous page)", f.BeforeID)
		} else if err != nil {
			return "", nil, fmt.Errorf("list events: %w", translate(err))
		}
		where = append(where, "(at, id) < ("+arg(at)+", "+arg(f.BeforeID)+")")
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ` + arg(f.Limit)
	return q, args, nil
}
