package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.RateLimitStore = (*Store)(nil)

var (
	// qLockBudget serialises the reservations of one CA across instances
	// sharing a PostgreSQL database: a transaction-scoped advisory lock on
	// (schema, CA). SQLite needs none: its write transactions already
	// exclude each other, in this process and in others on the same file.
	// The key must not change while instances of different versions may
	// share a database, or they would stop excluding each other.
	qLockBudget = SQLEach("",
		`SELECT pg_advisory_xact_lock(hashtextextended('certfleet.ratelimit|' || current_schema() || '|' || $1, 0))`)
	qCountBudget      = SQL(`SELECT count(*) FROM rate_log WHERE ca = $1 AND bucket = $2 AND at > $3`)
	qBudgetFreesAt    = SQL(`SELECT at FROM rate_log WHERE ca = $1 AND bucket = $2 AND at > $3 ORDER BY at LIMIT 1 OFFSET $4`)
	qInsertReserve    = SQL(`INSERT INTO rate_reservations (ca, spec, key_type, at) VALUES ($1, $2, $3, $4) RETURNING id`)
	qInsertRateLog    = SQL(`INSERT INTO rate_log (ca, bucket, at, reservation, refundable) VALUES ($1, $2, $3, $4, $5)`)
	qRefundBudget     = SQL(`DELETE FROM rate_log WHERE reservation = $1 AND refundable`)
	qInsertRateEvent  = SQL(`INSERT INTO rate_log (ca, bucket, at) VALUES ($1, $2, $3)`)
	qPruneRateLog     = SQL(`DELETE FROM rate_log WHERE at < $1`)
	qPruneReservation = SQL(`DELETE FROM rate_reservations WHERE at < $1`)
	qPruneRateHolds   = SQL(`DELETE FROM rate_holds WHERE until < $1`)
	qSetRateHold      = SQL(`INSERT INTO rate_holds (ca, account, until, reason, set_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (ca, account) DO UPDATE SET
			reason = CASE WHEN excluded.until >= rate_holds.until THEN excluded.reason ELSE rate_holds.reason END,
			set_at = CASE WHEN excluded.until >= rate_holds.until THEN excluded.set_at ELSE rate_holds.set_at END,
			until = CASE WHEN excluded.until >= rate_holds.until THEN excluded.until ELSE rate_holds.until END`)
	qRateHolds = SQL(`SELECT ca, account, until, reason, set_at FROM rate_holds WHERE until > $1 ORDER BY ca, account`)
)

// ReserveBudget implements certfleet.RateLimitStore. Count and insert are
// one write transaction that no other reservation for the CA can
// interleave with: on PostgreSQL it first takes the advisory lock of
// qLockBudget, so every reservation for the CA, from any instance, queues
// on it and the counts it reads cannot change before its inserts commit
// (read committed is enough under the lock: each statement sees every
// reservation committed before it); on SQLite a write transaction
// excludes every other writer, of this process or another on the file.
//
// A limit passes when its window has more free slots than there are jobs
// waiting ahead of the request's job in its queue (ratequeue.go); a
// blocked job waits in the queue of the limit whose turn comes last, and a
// job that passes leaves its queue.
func (s *Store) ReserveBudget(ctx context.Context, r certfleet.BudgetRequest) (certfleet.BudgetResult, error) {
	if err := checkBudgetRequest(r); err != nil {
		return certfleet.BudgetResult{}, err
	}
	var res certfleet.BudgetResult
	err := s.write(ctx, func(tx Tx) error {
		res = certfleet.BudgetResult{}
		if _, err := tx.Exec(qLockBudget, r.CA); err != nil {
			return fmt.Errorf("lock the budget of %s: %w", r.CA, err)
		}
		w, err := loadJobWait(tx, r)
		if err != nil {
			return err
		}
		ticket := w.ticketAt(r.CA)
		blockedAhead := 0
		for _, l := range r.Limits {
			since := r.At.Add(-l.Window)
			var n int
			if err := tx.QueryRow(qCountBudget, r.CA, l.Bucket, since).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", l.Name, err)
			}
			ahead, err := aheadOf(tx, r.CA, l, ticket)
			if err != nil {
				return err
			}
			if n+ahead < l.Limit {
				continue
			}
			until, err := turnOf(tx, r, l, n, ahead, ticket)
			if err != nil {
				return err
			}
			if !res.Until.After(until) {
				res.Blocked, res.Count, res.Until, blockedAhead = l, n, until, ahead
			}
		}
		if !res.Until.IsZero() {
			if w.jobID != 0 {
				res.Wait, err = w.wait(tx, r, res.Blocked, blockedAhead, res.Until)
			}
			return err
		}
		res.OK = true
		if r.Check {
			return nil // nothing taken; a waiting job keeps its place
		}
		if res.Released, err = w.release(tx); err != nil {
			return err
		}
		if !slices.ContainsFunc(r.Limits, func(l certfleet.BudgetLimit) bool { return !l.CheckOnly }) {
			return nil // only checks: nothing to add, no reservation
		}
		var id int64
		if err := tx.QueryRow(qInsertReserve, r.CA, r.Job.Spec, string(r.Job.KeyType), r.At).Scan(&id); err != nil {
			return fmt.Errorf("record reservation: %w", err)
		}
		for _, l := range r.Limits {
			if l.CheckOnly {
				continue
			}
			if _, err := tx.Exec(qInsertRateLog, r.CA, l.Bucket, r.At, id, l.Refundable); err != nil {
				return fmt.Errorf("record %s: %w", l.Name, err)
			}
		}
		res.Reservation = id
		return nil
	})
	if err != nil {
		return certfleet.BudgetResult{}, fmt.Errorf("reserve rate-limit budget for %s at %s: %w", r.Job, r.CA, err)
	}
	return res, nil
}

// RefundBudget implements certfleet.RateLimitStore. Each slot given back
// wakes the first job waiting for it whose turn is still to come (under
// the CA's lock, so two refunds never wake the same job for one slot),
// and the other instances are told.
func (s *Store) RefundBudget(ctx context.Context, reservation int64) error {
	now := s.now()
	return s.write(ctx, func(tx Tx) error {
		rows, err := tx.Query(qRefundedBuckets, reservation)
		if err != nil {
			return fmt.Errorf("refund rate-limit reservation %d: %w", reservation, err)
		}
		var freed [][2]string
		for rows.Next() {
			var b [2]string
			if err := rows.Scan(&b[0], &b[1]); err != nil {
				rows.Close()
				return fmt.Errorf("refund rate-limit reservation %d: %w", reservation, err)
			}
			freed = append(freed, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("refund rate-limit reservation %d: %w", reservation, err)
		}
		if len(freed) == 0 {
			return nil
		}
		if _, err := tx.Exec(qLockBudget, freed[0][0]); err != nil {
			return fmt.Errorf("lock the budget of %s: %w", freed[0][0], err)
		}
		if _, err := tx.Exec(qRefundBudget, reservation); err != nil {
			return fmt.Errorf("refund rate-limit reservation %d: %w", reservation, err)
		}
		woke := false
		for _, b := range freed {
			ok, err := wakeFirst(tx, b[0], b[1], now)
			if err != nil {
				return err
			}
			woke = woke || ok
		}
		if woke {
			return tx.Notify()
		}
		return nil
	})
}

// RecordBudgetEvent implements certfleet.RateLimitStore.
func (s *Store) RecordBudgetEvent(ctx context.Context, ca, bucket string, at time.Time) error {
	if err := checkBudgetEvent(ca, bucket, at); err != nil {
		return err
	}
	return s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qInsertRateEvent, ca, bucket, at); err != nil {
			return fmt.Errorf("record rate-limit event %s: %w", bucket, err)
		}
		return nil
	})
}

// PruneBudget implements certfleet.RateLimitStore.
func (s *Store) PruneBudget(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx Tx) error {
		n = 0
		for _, q := range []Q{qPruneRateLog, qPruneReservation, qPruneRateHolds} {
			k, err := tx.Exec(q, before)
			if err != nil {
				return fmt.Errorf("prune rate-limit log: %w", err)
			}
			n += k
		}
		return nil
	})
	return int(n), err
}

// SetRateHold implements certfleet.RateLimitStore. It notifies the other
// instances sharing the database (certfleet.Notifier), whose schedulers
// then see the hold.
func (s *Store) SetRateHold(ctx context.Context, h certfleet.RateHold) error {
	h, err := prepareRateHold(h, s.now())
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qSetRateHold, h.CA, h.Account, h.Until, h.Reason, h.SetAt); err != nil {
			return fmt.Errorf("set rate-limit hold of account %s at %s: %w", h.Account, h.CA, err)
		}
		return tx.Notify()
	})
}

// RateHolds implements certfleet.RateLimitStore.
func (s *Store) RateHolds(ctx context.Context, now time.Time) ([]certfleet.RateHold, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qRateHolds, now)
	if err != nil {
		return nil, fmt.Errorf("list rate-limit holds: %w", err)
	}
	defer rows.Close()
	var out []certfleet.RateHold
	for rows.Next() {
		var h certfleet.RateHold
		if err := rows.Scan(&h.CA, &h.Account, &h.Until, &h.Reason, &h.SetAt); err != nil {
			return nil, fmt.Errorf("list rate-limit holds: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rate-limit holds: %w", err)
	}
	return out, nil
}

// checkBudgetRequest is the validation of certfleet.RateLimitStore.ReserveBudget.
func checkBudgetRequest(r certfleet.BudgetRequest) error {
	if r.CA == "" || r.At.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "reserve rate-limit budget for %s: CA and time required", r.Job)
	}
	for _, l := range r.Limits {
		if l.Bucket == "" || l.Limit < 1 || l.Window <= 0 {
			return certfleet.Errorf(certfleet.EINVALID,
				"reserve rate-limit budget for %s: limit %q needs a bucket, a limit of at least 1 and a positive window", r.Job, l.Name)
		}
	}
	return nil
}

// checkBudgetEvent is the validation of certfleet.RateLimitStore.RecordBudgetEvent.
func checkBudgetEvent(ca, bucket string, at time.Time) error {
	if ca == "" || bucket == "" || at.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "record rate-limit event: CA, bucket and time required")
	}
	return nil
}

// prepareRateHold validates h for certfleet.RateLimitStore.SetRateHold and
// stamps a missing SetAt with now.
func prepareRateHold(h certfleet.RateHold, now time.Time) (certfleet.RateHold, error) {
	if h.CA == "" || h.Account == "" || h.Until.IsZero() {
		return h, certfleet.Errorf(certfleet.EINVALID, "set rate-limit hold: CA, account and time required")
	}
	if h.SetAt.IsZero() {
		h.SetAt = now
	}
	return h, nil
}
