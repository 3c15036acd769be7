package manager

// Saving a job's outcome through a store outage: the job keeps its lease
// (the heartbeat goes on) and the write is retried with backoff, instead of
// being dropped and the lease left to run out (issue 16: after a PostgreSQL
// restart, 13 of 300 jobs waited out a two-minute lease).

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
)

// Retry steps of a save the store refused, with reasons.
const (
	// saveBackoffMin: a database restart or failover takes seconds;
	// the first retry comes soon after a blip.
	saveBackoffMin = 100 * time.Millisecond
	// saveBackoffMax keeps the retries of a longer outage to one every
	// few seconds per job in flight, well within the takeover time.
	saveBackoffMax = 2 * time.Second
	// saveTryTimeout bounds one try, so a hung connection is abandoned
	// for a new one.
	saveTryTimeout = 10 * time.Second
	// shutdownSave bounds the saves of a stopping scheduler: a job's
	// outcome is written if the store answers within it; otherwise
	// whoever claims the job next resumes its order.
	shutdownSave = 30 * time.Second
)

// storeError marks an error of a store read that the decision needed: not
// the job's fault, so it is neither a failed attempt nor backed off.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// budgetError marks an error of the rate-limit Budget that says the store
// (where the budgets are kept) is unreachable as a store error, so that
// the job is given back without a failed attempt (storeDown) instead of
// backing off (issue 16: a database restart made jobs back off a minute).
func budgetError(err error) error {
	if err != nil && certfleet.ErrorCode(err) == certfleet.EUNAVAILABLE {
		return storeError{err}
	}
	return err
}

// storeDown reports whether err is a store read that failed because the
// store is unreachable.
func storeDown(err error) bool {
	var se storeError
	return errors.As(err, &se) && certfleet.ErrorCode(err) == certfleet.EUNAVAILABLE
}

// retryable reports whether a save that failed with err may succeed if
// tried again: the store was unreachable or busy, or the connection broke
// (an error without a code). A lost lease, a job that is gone or a refused
// value is final.
func retryable(err error) bool {
	switch certfleet.ErrorCode(err) {
	case certfleet.ELEASELOST, certfleet.ENOTFOUND, certfleet.EINVALID, certfleet.ECONFLICT, certfleet.EUNAUTHORIZED:
		return false
	}
	return !errors.Is(err, context.Canceled)
}

// save runs the store write fn until it succeeds or fails for good, while
// work (the job's context: it ends when the lease is lost or the scheduler
// stops) allows, retrying with backoff. Every try gets a context of its
// own, so a save in progress is not cut off by shutdown; after shutdown
// the tries go on for at most shutdownSave. It returns fn's last error,
// joined with the lost lease when that ended the retries.
func (m *Manager) save(work context.Context, what string, log *slog.Logger, fn func(ctx context.Context) error) error {
	var (
		backoff   = saveBackoffMin
		failures  int
		firstFail time.Time
		deadline  time.Time // set when shutdown began
	)
	for {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(work), saveTryTimeout)
		err := fn(tctx)
		cancel()
		if err == nil {
			if failures > 0 {
				log.Info("store reachable again; saved", "what", what, "tries", failures+1,
					"after", time.Since(firstFail).Round(time.Millisecond))
			}
			return nil
		}
		if !retryable(err) {
			return err
		}
		if failures == 0 {
			firstFail = time.Now()
			log.Warn("store unavailable; keeping the lease and retrying", "what", what, certfleet.LogError, err)
		}
		failures++
		if work.Err() != nil {
			if cause := context.Cause(work); certfleet.ErrorCode(cause) == certfleet.ELEASELOST {
				return errors.Join(err, cause)
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(shutdownSave)
			} else if time.Now().After(deadline) {
				return err
			}
			time.Sleep(backoff)
		} else {
			select {
			case <-time.After(backoff):
			case <-work.Done(): // lease lost or shutdown: decided above
			}
		}
		backoff = min(2*backoff, saveBackoffMax)
	}
}
