package storeutil

import (
	"time"

	"github.com/certfleet/certfleet"
)

// CheckBudgetRequest is the validation of certfleet.RateLimitStore.ReserveBudget.
func CheckBudgetRequest(r certfleet.BudgetRequest) error {
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

// CheckBudgetEvent is the validation of certfleet.RateLimitStore.RecordBudgetEvent.
func CheckBudgetEvent(ca, bucket string, at time.Time) error {
	if ca == "" || bucket == "" || at.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "record rate-limit event: CA, bucket and time required")
	}
	return nil
}

// PrepareRateHold validates h for certfleet.RateLimitStore.SetRateHold and
// stamps a missing SetAt with now.
func PrepareRateHold(h certfleet.RateHold, now time.Time) (certfleet.RateHold, error) {
	if h.CA == "" || h.Account == "" || h.Until.IsZero() {
		return h, certfleet.Errorf(certfleet.EINVALID, "set rate-limit hold: CA, account and time required")
	}
	if h.SetAt.IsZero() {
		h.SetAt = now
	}
	return h, nil
}

// PrepareJobAttempt validates a FailJob or DeferJob call (op, "fail" or
// "defer", names it in the error) and returns the attempt to record: for
// key, with outcome unless a has one, finished at now unless a says when.
func PrepareJobAttempt(op string, key certfleet.JobKey, a certfleet.Attempt, outcome string, nextAt, now time.Time) (certfleet.Attempt, error) {
	if nextAt.IsZero() {
		return a, certfleet.Errorf(certfleet.EINVALID, "%s job %s: next attempt time required", op, key)
	}
	a.JobKey = key
	if a.Outcome == "" {
		a.Outcome = outcome
	}
	if a.FinishedAt.IsZero() {
		a.FinishedAt = now
	}
	return a, nil
}
