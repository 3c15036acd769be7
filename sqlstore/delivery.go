package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.DeliveryStore = (*Store)(nil)

// deliveryColumns are a delivery's columns joined with its event's (d and
// e), in scanDelivery's order.
const deliveryColumns = `d.id, d.hook, d.delivery_key, d.created_at, d.next_at, d.delivered_at, d.attempts, d.last_error,
	d.claim_owner, d.claim_until, e.id, e.at, e.kind, e.actor, e.remote, e.certificate, e.key_type, e.serial,
	e.issuance_id, e.reason, e.detail`

// defaultDeliveryLimit is the page size of Deliveries when the filter sets
// none.
const defaultDeliveryLimit = 100

var (
	qInsertOwedEvent = SQL(`INSERT INTO audit_events (at, kind, actor, actor_type, remote, certificate, key_type, serial, issuance_id, reason, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`)
	qDeliveryKeyUsed = SQL(`SELECT EXISTS (SELECT 1 FROM event_deliveries WHERE delivery_key = $1)`)
	qInsertDelivery  = SQL(`INSERT INTO event_deliveries (hook, event_id, delivery_key, created_at, next_at)
		VALUES ($1, $2, $3, $4, $5)`)
	qClaimDelivery = SQL(`UPDATE event_deliveries SET claim_owner = $1, claim_until = $2
		WHERE id = $3 AND delivered_at IS NULL AND next_at <= $4 AND (claim_owner = '' OR claim_until <= $4)`)
	qDeliveryByID     = SQL(`SELECT ` + deliveryColumns + ` FROM event_deliveries d JOIN audit_events e ON e.id = d.event_id WHERE d.id = $1`)
	qCompleteDelivery = SQL(`UPDATE event_deliveries SET delivered_at = $1, last_error = '', claim_owner = '', claim_until = NULL
		WHERE id = $2 AND claim_owner = $3 AND delivered_at IS NULL`)
	qReleaseDelivery = SQL(`UPDATE event_deliveries SET attempts = attempts + 1, last_error = $1, next_at = $2,
			claim_owner = '', claim_until = NULL
		WHERE id = $3 AND claim_owner = $4 AND delivered_at IS NULL`)
)

func scanDelivery(row Row) (certfleet.Delivery, error) {
	var (
		d  certfleet.Delivery
		kt string
	)
	err := row.Scan(&d.ID, &d.Hook, &d.Key, &d.CreatedAt, &d.NextAt, &d.DeliveredAt, &d.Attempts, &d.LastError,
		&d.ClaimOwner, &d.ClaimUntil, &d.Event.ID, &d.Event.At, &d.Event.Kind, &d.Event.Actor, &d.Event.Remote,
		&d.Event.Certificate, &kt, &d.Event.Serial, &d.Event.IssuanceID, &d.Event.Reason, &d.Event.Detail)
	d.Event.KeyType = certfleet.KeyType(kt)
	return d, err
}

// RecordOwedEvent implements certfleet.DeliveryStore: the event's INSERT
// into audit_events and one INSERT per hook into event_deliveries (the
// drivers' migrations/0018_event_deliveries.sql), in one transaction.
func (s *Store) RecordOwedEvent(ctx context.Context, e certfleet.Event, key string, hooks []string) (certfleet.Event, bool, error) {
	e, err := certfleet.PrepareEvent(e, s.now())
	if err != nil {
		return certfleet.Event{}, false, err
	}
	if len(key) > certfleet.MaxDeliveryKey || strings.ContainsAny(key, "\x00\r\n") {
		return certfleet.Event{}, false, certfleet.Errorf(certfleet.EINVALID,
			"record %s event: delivery key: at most %d bytes on one line", e.Kind, certfleet.MaxDeliveryKey)
	}
	for i, h := range hooks {
		if err := certfleet.ValidateHookName(h); err != nil {
			return certfleet.Event{}, false, certfleet.Errorf(certfleet.EINVALID, "record %s event: %v", e.Kind, err)
		}
		if slices.Contains(hooks[:i], h) {
			return certfleet.Event{}, false, certfleet.Errorf(certfleet.EINVALID, "record %s event: hook %s listed twice", e.Kind, h)
		}
	}
	created := s.now()
	var (
		out      certfleet.Event
		recorded bool
	)
	err = s.write(ctx, func(tx Tx) error {
		out, recorded = certfleet.Event{}, false
		if key != "" {
			var used bool
			if err := tx.QueryRow(qDeliveryKeyUsed, key).Scan(&used); err != nil {
				return fmt.Errorf("record %s event: look up delivery key: %w", e.Kind, err)
			}
			if used {
				return nil // recorded before, by this notification's earlier try
			}
		}
		ev := e
		if err := tx.QueryRow(qInsertOwedEvent, ev.At, ev.Kind, ev.Actor, certfleet.ActorType(ev.Actor), ev.Remote,
			ev.Certificate, string(ev.KeyType), ev.Serial, ev.IssuanceID, ev.Reason, ev.Detail).Scan(&ev.ID); err != nil {
			return fmt.Errorf("record %s event: %w", ev.Kind, err)
		}
		k := key
		if k == "" {
			k = certfleet.EventKey(ev.ID)
		}
		for _, h := range hooks {
			// Due at the event's time: the emitter's clock, which the
			// dispatchers share in tests that move time.
			if _, err := tx.Exec(qInsertDelivery, h, ev.ID, k, created, ev.At); err != nil {
				return fmt.Errorf("record %s event: owe it to hook %s: %w", ev.Kind, h, err)
			}
		}
		out, recorded = ev, true
		return nil
	})
	return out, recorded, err
}

// Deliveries implements certfleet.DeliveryStore. Owed deliveries of one
// hook are a range of the partial index event_deliveries_owed, in event
// order.
func (s *Store) Deliveries(ctx context.Context, f certfleet.DeliveryFilter) ([]certfleet.Delivery, error) {
	if f.Limit < 0 {
		return nil, certfleet.Errorf(certfleet.EINVALID, "delivery filter: limit %d: must not be negative", f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = defaultDeliveryLimit
	}
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Hook != "" {
		where = append(where, "d.hook = "+arg(f.Hook))
	}
	if f.OwedOnly {
		where = append(where, "d.delivered_at IS NULL")
		if !f.DueBy.IsZero() {
			by := arg(f.DueBy)
			where = append(where, "d.next_at <= "+by, "(d.claim_owner = '' OR d.claim_until <= "+by+")")
		}
	}
	stmt := `SELECT ` + deliveryColumns + ` FROM event_deliveries d JOIN audit_events e ON e.id = d.event_id`
	if len(where) > 0 {
		stmt += ` WHERE ` + strings.Join(where, " AND ")
	}
	stmt += ` ORDER BY d.event_id, d.id LIMIT ` + arg(f.Limit)
	rows, err := q.Query(SQL(stmt), args...)
	if err != nil {
		return nil, fmt.Errorf("list event deliveries: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list event deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list event deliveries: %w", err)
	}
	return out, nil
}

// ClaimDelivery implements certfleet.DeliveryStore: one conditional
// UPDATE, so of several instances claiming at once exactly one wins.
func (s *Store) ClaimDelivery(ctx context.Context, id int64, owner string, now, until time.Time) (certfleet.Delivery, bool, error) {
	if owner == "" {
		return certfleet.Delivery{}, false, certfleet.Errorf(certfleet.EINVALID, "claim delivery %d: owner required", id)
	}
	var (
		out certfleet.Delivery
		won bool
	)
	err := s.write(ctx, func(tx Tx) error {
		out, won = certfleet.Delivery{}, false
		n, err := tx.Exec(qClaimDelivery, owner, until, id, now)
		if err != nil {
			return fmt.Errorf("claim delivery %d: %w", id, err)
		}
		if n == 0 {
			return nil
		}
		if out, err = scanDelivery(tx.QueryRow(qDeliveryByID, id)); err != nil {
			return fmt.Errorf("claim delivery %d: load it: %w", id, err)
		}
		won = true
		return nil
	})
	return out, won, err
}

// CompleteDelivery implements certfleet.DeliveryStore.
func (s *Store) CompleteDelivery(ctx context.Context, id int64, owner string, at time.Time) error {
	return s.endClaim(ctx, id, owner, "record delivery", qCompleteDelivery, at, id, owner)
}

// ReleaseDelivery implements certfleet.DeliveryStore.
func (s *Store) ReleaseDelivery(ctx context.Context, id int64, owner, deliveryErr string, next time.Time) error {
	deliveryErr = certfleet.ClipEventDetail(strings.ToValidUTF8(strings.ReplaceAll(deliveryErr, "\x00", ""), "\uFFFD"))
	return s.endClaim(ctx, id, owner, "release delivery", qReleaseDelivery, deliveryErr, next, id, owner)
}

// endClaim runs q, which ends owner's claim of delivery id; no row changed
// is ELEASELOST.
func (s *Store) endClaim(ctx context.Context, id int64, owner, what string, q Q, args ...any) error {
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(q, args...)
		if err != nil {
			return fmt.Errorf("%s %d: %w", what, id, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "%s %d: the claim is no longer %s's (it ran out, and another instance may have sent it)", what, id, owner)
		}
		return nil
	})
}
