package certfleet

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Rate-limit budgets (issue 6): certfleet keeps its own log of the orders it
// placed and the validations that failed, counts them against a CA's
// published limits, and defers work that would exceed one instead of letting
// the CA refuse it. A rateLimited answer from the CA itself is kept as a
// hold until its Retry-After. Package ratelimit implements Budget on a
// RateLimitStore; see docs/ratelimits.md.

// BudgetLimit is one limit checked by a reservation: at most Limit entries in
// Bucket within Window before the reservation's time.
type BudgetLimit struct {
	// Bucket names what is counted, e.g. "orders|default",
	// "domain|example.com", "names|<sha256 of the set>",
	// "failed|default|www.example.com". Buckets are per CA.
	Bucket string
	Limit  int
	Window time.Duration
	// Name says which limit this is, for the operator ("certificates per
	// registered domain example.com").
	Name string
	// CheckOnly checks the bucket without adding to it (the failed
	// validations limit: failures are recorded when they happen).
	CheckOnly bool
	// Refundable entries are removed by RefundBudget: the certificate
	// limits, which count issued certificates, are given back when the
	// order ends without one. The new-orders limit is not: the CA counted
	// the order.
	Refundable bool
}

// BudgetRequest asks to reserve one entry in each of Limits at once.
type BudgetRequest struct {
	CA string // the CA's directory URL
	// Job is the job the order is for. A job the store holds waits in
	// the queue of the limit that blocks it (BudgetWait); the zero key
	// (a request for no job) is answered without queueing.
	Job    JobKey
	At     time.Time
	Limits []BudgetLimit
	// Check only asks whether the request would be blocked now: nothing
	// is reserved, and a waiting job keeps its place when it would pass
	// (Budget.Check). A blocked check queues the job like a blocked
	// reservation: the job is deferred either way.
	Check bool
}

// BudgetResult is the store's answer: either the reservation was made (OK,
// Reservation), or Blocked is the limit that is full, with Count entries in
// its window, and Until is when the job's turn can come.
type BudgetResult struct {
	OK          bool
	Reservation int64
	Blocked     BudgetLimit
	Count       int
	Until       time.Time
	// Wait is, when blocked, the job's place in the queue of the Blocked
	// limit (nil for a request for no job).
	Wait *BudgetWait
	// Released is, when OK and not a Check, the wait the reservation
	// ended: the job had been waiting and its turn came (nil when it
	// was not waiting).
	Released *BudgetWait
}

// BudgetWait is a job waiting for a rate-limit budget: its place in the
// queue of one bucket (issue 13). Jobs blocked by a bucket wait in it in
// ticket order, and a job passes a bucket only when the slots free in its
// window outnumber the jobs waiting ahead of it: a slot that frees goes
// to the next in the queue, not to whichever job asks first, and a job
// that waits is deferred to its own turn instead of to the moment the
// first slot frees (when every waiting job would ask at once).
type BudgetWait struct {
	Job    JobKey
	CA     string
	Bucket string
	// Name says which limit it waits for, e.g. new orders of account
	// "default".
	Name string
	// Ticket orders the waiting jobs of a CA. A job keeps it while it
	// waits, also when another bucket blocks it next, so it is never
	// sent to the back of a queue it waited in.
	Ticket int64
	// Place is 1 for the next job to pass, counting the jobs ahead in
	// the same bucket.
	Place int
	// Turn is when its turn can come: when as many slots of the window
	// have freed as there are jobs ahead of it, each of those taking
	// one. A slot given back early (a refund) wakes the first waiting
	// job; a job ahead that leaves the queue makes the turns behind it
	// come earlier than said.
	Turn time.Time
	// Since is when the job started waiting.
	Since time.Time
	// New is set on the answer that made the job start waiting (it was
	// not waiting before): the one that is reported as a deferral.
	New bool
}

func (w BudgetWait) String() string {
	return fmt.Sprintf("waiting for budget %s: place %d, turn at %s (waiting since %s)",
		w.Name, w.Place, w.Turn.UTC().Format(time.RFC3339), w.Since.UTC().Format(time.RFC3339))
}

// BudgetWaitFilter selects waiting jobs: those of Spec (every key type, or
// only KeyType), or every waiting job when Spec is empty.
type BudgetWaitFilter struct {
	Spec    string
	KeyType KeyType
}

// RateHold is a rateLimited answer from a CA (RFC 8555 §6.6), kept so that
// no new order of the account is placed before Until, even after a restart.
type RateHold struct {
	CA      string // directory URL
	Account string // the account's name in the config
	Until   time.Time
	Reason  string // the CA's problem detail
	SetAt   time.Time
}

// RateLimitStore keeps the order log of the rate-limit budgets, the CA's
// holds, and the deferrals of jobs. Safe for concurrent use; on a shared
// store (PostgreSQL) ReserveBudget is atomic across instances: two
// instances never both take the last slot of a bucket.
type RateLimitStore interface {
	// ReserveBudget counts, for each limit of r, the bucket's entries of
	// r.CA with At after r.At-Window; if every one has room it adds an
	// entry to each limit that is not CheckOnly and returns OK with a new
	// reservation ID (0 when every limit is CheckOnly: nothing was
	// added). Otherwise it adds nothing and returns the blocked
	// limit whose slot frees last, and when. Count and insert are one
	// transaction under a lock.
	ReserveBudget(ctx context.Context, r BudgetRequest) (BudgetResult, error)
	// RefundBudget removes the Refundable entries of a reservation (the
	// order ended without a certificate).
	RefundBudget(ctx context.Context, reservation int64) error
	// RecordBudgetEvent adds one entry to a bucket (a failed validation).
	RecordBudgetEvent(ctx context.Context, ca, bucket string, at time.Time) error
	// PruneBudget deletes log entries dated before before and holds that
	// ended before it; it returns how many rows went.
	PruneBudget(ctx context.Context, before time.Time) (int, error)
	// SetRateHold stores h, keeping the later Until when the account
	// already has a hold.
	SetRateHold(ctx context.Context, h RateHold) error
	// RateHolds lists the holds that end after now, ordered by CA and
	// account.
	RateHolds(ctx context.Context, now time.Time) ([]RateHold, error)
	// DeferJob records a deferred attempt (Outcome OutcomeDeferred, the
	// reason in Error), sets NextAt and releases the lease, leaving
	// Failures, LastError and the pending order as they are: a deferral is
	// not a failure. Fenced like FailJob.
	DeferJob(ctx context.Context, key JobKey, owner string, attempt Attempt, nextAt time.Time) error
	// PostponeJob sets NextAt and releases the lease and records nothing
	// else: a job already waiting for a budget, asked again before its
	// turn, keeps its place and its deferral stands. Fenced like FailJob.
	PostponeJob(ctx context.Context, key JobKey, owner string, nextAt time.Time) error
	// BudgetWaits lists the jobs waiting for a budget that f selects,
	// each with its place counted now, ordered by CA, bucket and place.
	// A job stops waiting when a reservation passes it (Released), when
	// its attempt fails or it is rescheduled without an order, and when
	// it is disabled.
	BudgetWaits(ctx context.Context, f BudgetWaitFilter) ([]BudgetWait, error)
}

// OrderIntent describes a new order about to be placed.
type OrderIntent struct {
	Job         JobKey
	Account     string // the account's name (CertificateSpec.AccountName)
	Tenant      string // the spec's tenant ("" the operator's): its quota counts the order
	Identifiers []Identifier
	// Renewal is true when the order carries ARI "replaces" (RFC 9773
	// §5): the CA exempts such renewals from its issuance limits.
	Renewal bool
	At      time.Time
	// OrderURL is, when the attempt is reported to Finish, the order that
	// was placed or resumed ("" if none).
	OrderURL string
}

// Budget decides whether a new order fits the CA's rate limits. The manager
// consults it just before a new order is placed (never when an order in
// flight is resumed) and tells it how the attempt ended.
type Budget interface {
	// Check tells, without taking anything, whether an order like o would
	// be deferred now (a *DeferError) — so that work certain to be
	// deferred skips its prepare commands. Reserve still decides.
	Check(ctx context.Context, o OrderIntent) error
	// Reserve takes the order's share of every budget, or returns a
	// *DeferError when one is exhausted or the CA asked us to wait. The
	// reservation's ID goes back to Finish.
	Reserve(ctx context.Context, o OrderIntent) (Reservation, error)
	// Finish reports the end of an attempt: err is nil when the
	// certificate was issued. A failed validation is counted, a rateLimited
	// answer becomes a hold, and the certificate budgets of an order that
	// issued nothing are refunded.
	Finish(ctx context.Context, o OrderIntent, reservation int64, err error)
}

// Reservation is what Budget.Reserve took.
type Reservation struct {
	// ID names the reservation for Finish (0: nothing was taken).
	ID int64
	// Released is the wait this reservation ended, when the job had been
	// waiting for a budget and its turn came; ReleasedLimit names the
	// limit it waited for as DeferError.Limit does.
	Released      *BudgetWait
	ReleasedLimit string
}

// DeferError says that work was put off on purpose: a budget is exhausted
// or the CA asked us to wait. It is not a failure: the job is rescheduled to
// Until without backoff.
type DeferError struct {
	// Limit is a short machine-readable name of the limit
	// ("certificates_per_domain", "ca_rate_limited", ...).
	Limit string
	// Reason says which budget and why, for the operator.
	Reason string
	Until  time.Time
	// Wait is the job's place in the budget's queue (nil when it waits
	// for no queue: the CA's hold). Wait.New tells the deferral that
	// made it start waiting from a later look before its turn.
	Wait *BudgetWait
}

func (e *DeferError) Error() string {
	return fmt.Sprintf("deferred until %s: %s", e.Until.UTC().Format(time.RFC3339), e.Reason)
}

// AsDeferError returns the *DeferError in err's chain, if any.
func AsDeferError(err error) (*DeferError, bool) {
	var d *DeferError
	if errors.As(err, &d) {
		return d, true
	}
	return nil, false
}

// ValidationFailure is implemented by errors of an authorization that the
// CA found invalid: the identifier whose validation failed.
type ValidationFailure interface {
	FailedIdentifier() string
}

// FailedIdentifier returns the identifier whose validation failed according
// to err, if err says so.
func FailedIdentifier(err error) (string, bool) {
	var vf ValidationFailure
	if errors.As(err, &vf) {
		if id := vf.FailedIdentifier(); id != "" {
			return id, true
		}
	}
	return "", false
}
