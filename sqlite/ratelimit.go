package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.RateLimitStore = (*Store)(nil)

// ReserveBudget implements certfleet.RateLimitStore. Count and insert run in
// one BEGIN IMMEDIATE transaction on the single writer connection, so no
// other reservation (of this process or another one on the same file) can
// interleave.
func (s *Store) ReserveBudget(ctx context.Context, r certfleet.BudgetRequest) (certfleet.BudgetResult, error) {
	if err := storeutil.CheckBudgetRequest(r); err != nil {
		return certfleet.BudgetResult{}, err
	}
	var res certfleet.BudgetResult
	err := s.write(ctx, func(tx *txn) error {
		res = certfleet.BudgetResult{}
		for _, l := range r.Limits {
			since := tsReq(r.At.Add(-l.Window))
			var n int
			if err := tx.queryRow(`SELECT count(*) FROM rate_log WHERE ca = ? AND bucket = ? AND at > ?`,
				r.CA, l.Bucket, since).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", l.Name, translate(err))
			}
			if n < l.Limit {
				continue
			}
			// The slot frees when the entry that puts the bucket at its
			// limit leaves the window: the (n-limit+1)-th oldest.
			var oldest int64
			if err := tx.queryRow(`SELECT at FROM rate_log WHERE ca = ? AND bucket = ? AND at > ?
				ORDER BY at LIMIT 1 OFFSET ?`, r.CA, l.Bucket, since, n-l.Limit).Scan(&oldest); err != nil {
				return fmt.Errorf("oldest entry of %s: %w", l.Name, translate(err))
			}
			until := time.UnixMicro(oldest).UTC().Add(l.Window)
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
		rr, err := tx.exec(`INSERT INTO rate_reservations (ca, spec, key_type, at) VALUES (?, ?, ?, ?)`,
			r.CA, r.Job.Spec, string(r.Job.KeyType), tsReq(r.At))
		if err != nil {
			return fmt.Errorf("record reservation: %w", translate(err))
		}
		id, err := rr.LastInsertId()
		if err != nil {
			return fmt.Errorf("record reservation: %w", err)
		}
		for _, l := range r.Limits {
			if l.CheckOnly {
				continue
			}
			if _, err := tx.exec(`INSERT INTO rate_log (ca, bucket, at, reservation, refundable) VALUES (?, ?, ?, ?, ?)`,
				r.CA, l.Bucket, tsReq(r.At), id, boolInt(l.Refundable)); err != nil {
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
	return s.write(ctx, func(tx *txn) error {
		if _, err := tx.exec(`DELETE FROM rate_log WHERE reservation = ? AND refundable = 1`, reservation); err != nil {
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
	return s.write(ctx, func(tx *txn) error {
		if _, err := tx.exec(`INSERT INTO rate_log (ca, bucket, at) VALUES (?, ?, ?)`, ca, bucket, tsReq(at)); err != nil {
			return fmt.Errorf("record rate-limit event %s: %w", bucket, translate(err))
		}
		return nil
	})
}

// PruneBudget implements certfleet.RateLimitStore.
func (s *Store) PruneBudget(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *txn) error {
		n = 0
		for _, q := range []string{
			`DELETE FROM rate_log WHERE at < ?`,
			`DELETE FROM rate_reservations WHERE at < ?`,
			`DELETE FROM rate_holds WHERE until < ?`,
		} {
			r, err := tx.exec(q, tsReq(before))
			if err != nil {
				return fmt.Errorf("prune rate-limit log: %w", translate(err))
			}
			k, _ := r.RowsAffected()
			n += k
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
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(`INSERT INTO rate_holds (ca, account, until, reason, set_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (ca, account) DO UPDATE SET
				reason = CASE WHEN excluded.until >= rate_holds.until THEN excluded.reason ELSE rate_holds.reason END,
				set_at = CASE WHEN excluded.until >= rate_holds.until THEN excluded.set_at ELSE rate_holds.set_at END,
				until = max(rate_holds.until, excluded.until)`,
			h.CA, h.Account, tsReq(h.Until), h.Reason, tsReq(h.SetAt))
		if err != nil {
			return fmt.Errorf("set rate-limit hold of account %s at %s: %w", h.Account, h.CA, translate(err))
		}
		return nil
	})
}

// RateHolds implements certfleet.RateLimitStore.
func (s *Store) RateHolds(ctx context.Context, now time.Time) ([]certfleet.RateHold, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT ca, account, until, reason, set_at FROM rate_holds
		WHERE until > ? ORDER BY ca, account`, tsReq(now))
	if err != nil {
		return nil, fmt.Errorf("list rate-limit holds: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.RateHold
	for rows.Next() {
		var (
			h            certfleet.RateHold
			until, setAt sql.NullInt64
		)
		if err := rows.Scan(&h.CA, &h.Account, &until, &h.Reason, &setAt); err != nil {
			return nil, fmt.Errorf("list rate-limit holds: %w", translate(err))
		}
		h.Until, h.SetAt = fromTS(until), fromTS(setAt)
		out = append(out, h)
	}
	return out, translate(rows.Err())
}
