package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

var _ certfleet.RateLimitStore = (*Store)(nil)

// ReserveBudget implements certfleet.RateLimitStore. The transaction first
// takes a transaction-scoped advisory lock on (schema, CA): every
// reservation for the CA, from any instance, queues on it, so the counts it
// reads cannot change before its inserts commit and two instances never
// both take the last slot of a bucket. Read committed is enough under the
// lock: each statement sees every reservation committed before it.
func (s *Store) ReserveBudget(ctx context.Context, r certfleet.BudgetRequest) (certfleet.BudgetResult, error) {
	if err := storeutil.CheckBudgetRequest(r); err != nil {
		return certfleet.BudgetResult{}, err
	}
	var res certfleet.BudgetResult
	err := s.write(ctx, func(tx pgx.Tx) error {
		res = certfleet.BudgetResult{}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('certfleet.ratelimit|' || $1 || '|' || $2, 0))`,
			s.schema, r.CA); err != nil {
			return fmt.Errorf("lock the budget of %s: %w", r.CA, translate(err))
		}
		for _, l := range r.Limits {
			since := r.At.Add(-l.Window)
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM rate_log WHERE ca = $1 AND bucket = $2 AND at > $3`,
				r.CA, l.Bucket, since).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", l.Name, translate(err))
			}
			if n < l.Limit {
				continue
			}
			// The slot frees when the entry that puts the bucket at its
			// limit leaves the window: the (n-limit+1)-th oldest.
			var oldest time.Time
			if err := tx.QueryRow(ctx, `SELECT at FROM rate_log WHERE ca = $1 AND bucket = $2 AND at > $3
				ORDER BY at LIMIT 1 OFFSET $4`, r.CA, l.Bucket, since, n-l.Limit).Scan(&oldest); err != nil {
				return fmt.Errorf("oldest entry of %s: %w", l.Name, translate(err))
			}
			until := oldest.UTC().Add(l.Window)
			if !res.Until.After(until) {
				res.Blocked, res.Count, res.Until = l, n, until
			}
		}
		if !res.Until.IsZero() {
			return nil
		}
		if !slices.ContainsFunc(r.Limits, func(l certfleet.BudgetLimit) bool { return !l.CheckOnly }) {
			res.OK = true // a check: nothing to add, no reservation
			return nil
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO rate_reservations (ca, spec, key_type, at) VALUES ($1, $2, $3, $4) RETURNING id`,
			r.CA, r.Job.Spec, string(r.Job.KeyType), r.At).Scan(&id); err != nil {
			return fmt.Errorf("record reservation: %w", translate(err))
		}
		for _, l := range r.Limits {
			if l.CheckOnly {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO rate_log (ca, bucket, at, reservation, refundable) VALUES ($1, $2, $3, $4, $5)`,
				r.CA, l.Bucket, r.At, id, l.Refundable); err != nil {
				return fmt.Errorf("record %s: %w", l.Name, translate(err))
			}
		}
		res.OK, res.Reservation = true, id
		return nil
	})
	if err != nil {
		return certfleet.BudgetResult{}, fmt.Errorf("reserve rate-limit budget for %s at %s: %w", r.Job, r.CA, err)
	}
	return res, nil
}

// RefundBudget implements certfleet.RateLimitStore.
func (s *Store) RefundBudget(ctx context.Context, reservation int64) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM rate_log WHERE reservation = $1 AND refundable`, reservation); err != nil {
			return fmt.Errorf("refund rate-limit reservation %d: %w", reservation, translate(err))
		}
		return nil
	})
}

// RecordBudgetEvent implements certfleet.RateLimitStore.
func (s *Store) RecordBudgetEvent(ctx context.Context, ca, bucket string, at time.Time) error {
	if err := storeutil.CheckBudgetEvent(ca, bucket, at); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO rate_log (ca, bucket, at) VALUES ($1, $2, $3)`, ca, bucket, at); err != nil {
			return fmt.Errorf("record rate-limit event %s: %w", bucket, translate(err))
		}
		return nil
	})
}

// PruneBudget implements certfleet.RateLimitStore.
func (s *Store) PruneBudget(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		n = 0
		for _, q := range []string{
			`DELETE FROM rate_log WHERE at < $1`,
			`DELETE FROM rate_reservations WHERE at < $1`,
			`DELETE FROM rate_holds WHERE until < $1`,
		} {
			tag, err := tx.Exec(ctx, q, before)
			if err != nil {
				return fmt.Errorf("prune rate-limit log: %w", translate(err))
			}
			n += tag.RowsAffected()
		}
		return nil
	})
	return int(n), err
}

// SetRateHold implements certfleet.RateLimitStore.
func (s *Store) SetRateHold(ctx context.Context, h certfleet.RateHold) error {
	h, err := storeutil.PrepareRateHold(h, s.now())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO rate_holds (ca, account, until, reason, set_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (ca, account) DO UPDATE SET
				reason = CASE WHEN excluded.until >= rate_holds.until THEN excluded.reason ELSE rate_holds.reason END,
				set_at = CASE WHEN excluded.until >= rate_holds.until THEN excluded.set_at ELSE rate_holds.set_at END,
				until = greatest(rate_holds.until, excluded.until)`,
			h.CA, h.Account, h.Until, h.Reason, h.SetAt)
		if err != nil {
			return fmt.Errorf("set rate-limit hold of account %s at %s: %w", h.Account, h.CA, translate(err))
		}
		return s.notify(ctx, tx)
	})
}

// RateHolds implements certfleet.RateLimitStore.
func (s *Store) RateHolds(ctx context.Context, now time.Time) ([]certfleet.RateHold, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	rows, err := s.pool.Query(ctx, `SELECT ca, account, until, reason, set_at FROM rate_holds
		WHERE until > $1 ORDER BY ca, account`, now)
	if err != nil {
		return nil, fmt.Errorf("list rate-limit holds: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.RateHold
	for rows.Next() {
		var (
			h            certfleet.RateHold
			until, setAt pgtype.Timestamptz
		)
		if err := rows.Scan(&h.CA, &h.Account, &until, &h.Reason, &setAt); err != nil {
			return nil, fmt.Errorf("list rate-limit holds: %w", translate(err))
		}
		h.Until, h.SetAt = fromTS(until), fromTS(setAt)
		out = append(out, h)
	}
	return out, translate(rows.Err())
}
