package certfleet

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// JobKey identifies the renewal job of one key type of one spec.
type JobKey struct {
	Spec    string
	KeyType KeyType
}

func (k JobKey) String() string { return fmt.Sprintf("%s/%s", k.Spec, k.KeyType) }

// Job is the renewal state of one certificate lineage (a spec's key type): when
// it is next due, how it has been failing, the order in flight and who holds
// the lease on it. The scheduler claims due jobs with a lease so that two
// instances never work on the same job at once.
type Job struct {
	JobKey
	// CurrentID is the issuance in force (0: none yet).
	CurrentID int64
	// CurrentRevision is the spec revision of the current issuance; a
	// differing spec revision makes the job due at once.
	CurrentRevision string
	// TargetRevision is the revision of the spec as last synced (what
	// the job should hold). Read at claim, it is handed back in
	// ScheduleUpdate.SeenRevision, so the store can tell a spec changed
	// while the job was leased from one that was already out of line
	// (names left out of the order by their self-tests).
	TargetRevision string
	// ChangedAt is when the first change of the spec not yet taken into
	// an order was synced (its creation, a name added or removed); zero
	// when there is none. Orders of certificates requested over the API
	// wait until ChangedAt plus the pack delay, so that requests arriving
	// together share one order (manager.Manager.PackDelay). Kept in the
	// store, so every instance and a restart see the same window.
	ChangedAt time.Time
	// NextAt is when the job is next due.
	NextAt time.Time
	// Failures counts consecutive failed attempts (reset on success).
	Failures int
	// LastError is the newest failure's message, kept until success.
	LastError   string
	LastErrorAt time.Time
	// ARI state (RFC 9773): the CA's suggested window for the current
	// certificate, and when to ask again.
	ARIStart, ARIEnd time.Time
	ARIRetryAt       time.Time
	// PendingOrderURL is the order in flight, with PendingKeyPEM the
	// certificate key its CSR is made from. A job claimed with a pending
	// order resumes it rather than placing a second one.
	PendingOrderURL string
	PendingKeyPEM   []byte
	// Placing is set just before a new order is placed and cleared once
	// its URL is saved (SetPendingOrder) or the job completes: a job
	// claimed with Placing set and no PendingOrderURL was interrupted
	// between the CA creating an order and the store learning its URL,
	// and the taker looks that order up at the CA instead of placing a
	// second one (issue 16).
	Placing OrderPlacing
	// Lease: which instance works on the job, until when.
	LeaseOwner string
	LeaseUntil time.Time
	// Disabled jobs (spec withdrawn, key type removed) are never claimed.
	Disabled bool
	// RenewRequested is when an operator asked for a new certificate
	// although the current one is not due (a retry with force, issue 15
	// finding 6); zero when nobody did. The next attempt orders whatever
	// the renewal window says, and the issuance it brings clears it.
	RenewRequested time.Time
	// Deploy is whether the current issuance is written where the
	// configuration says (output_dir, copies, commands): a certificate
	// issued but not written is failing as much as one not issued.
	Deploy DeployState
}

// OrderPlacing marks a new order about to be placed: when, with which ACME
// account, for which identifiers. The zero value (At zero) is no mark.
type OrderPlacing struct {
	At          time.Time    `json:"at"`
	Account     string       `json:"account"` // the account URL at the CA
	Identifiers []Identifier `json:"identifiers"`
}

// DeployState is the outcome of writing a job's current issuance to its
// outputs. The zero value is "written, or nothing to write".
type DeployState struct {
	// Error is why the newest try to write the files failed; "" once
	// they are written.
	Error string `json:"error,omitempty"`
	// Failures counts consecutive failed tries (0 once written).
	Failures int `json:"failures,omitempty"`
	// FailedAt is when the newest failed try ended.
	FailedAt time.Time `json:"failed_at,omitzero"`
	// NextAt is when the files are tried again (on their own schedule,
	// not only after the next issuance).
	NextAt time.Time `json:"next_at,omitzero"`
}

// NotWritten reports whether the current issuance is not written.
func (d DeployState) NotWritten() bool { return d.Error != "" }

// LogValue keeps the pending key out of logs.
func (j Job) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String(LogCertificate, j.Spec),
		slog.String(LogKeyType, string(j.KeyType)),
		slog.Time(LogNextAt, j.NextAt),
		slog.Int("failures", j.Failures),
	)
}

// Attempt outcomes.
const (
	OutcomeIssued   = "issued"
	OutcomeFailed   = "failed"
	OutcomeDeferred = "deferred" // not due after all (e.g. ARI moved the window)
)

// Attempt is one try at a job, kept for status and diagnosis.
type Attempt struct {
	ID         int64
	JobKey     JobKey
	Instance   string
	StartedAt  time.Time
	FinishedAt time.Time
	Outcome    string
	OrderURL   string
	// Error is the failure's message; ProblemType the ACME problem type
	// (urn:ietf:params:acme:error:...) when the CA sent one.
	Error       string
	ProblemType string
}

// ClaimRequest asks for up to Limit due jobs, leased to Owner until Now+Lease.
type ClaimRequest struct {
	Owner string
	Now   time.Time
	Lease time.Duration
	Limit int
}

// JobFilter selects jobs. Zero fields match everything.
type JobFilter struct {
	Spec            string
	IncludeDisabled bool
	// Leased selects only jobs with a lease owner (expired or not).
	Leased bool
	// NotWritten selects only jobs whose current issuance could not be
	// written (Deploy.Error set).
	NotWritten bool
	// Failing selects only jobs in trouble: whose last attempt failed
	// (Failures > 0) or whose current issuance is not written.
	Failing bool
}

// ScheduleUpdate sets when a job is next due and its ARI state, without an
// issuance (e.g. ARI moved the window later).
type ScheduleUpdate struct {
	NextAt           time.Time
	ARIStart, ARIEnd time.Time
	ARIRetryAt       time.Time
	// SeenRevision is the job's TargetRevision when it was claimed. When
	// the spec's revision is another by the time the update is written,
	// the spec changed while the job was leased, and the job is made due
	// at once (the decision was made on the old spec); otherwise NextAt
	// stands, even when the current issuance is of another revision (its
	// waiting names left out, issue 14). Empty: the job is made due at
	// once whenever its current issuance is of another revision than the
	// spec's (the behaviour before SeenRevision).
	SeenRevision string
}

// JobStore schedules renewal work with leases. Methods that take an owner
// fail with an ELEASELOST error when the job's lease is no longer the owner's
// (it expired and another instance claimed it): the caller must stop and
// write nothing more. All methods are safe for concurrent use by many
// goroutines and, for shared stores, many instances.
type JobStore interface {
	// ClaimDue leases up to r.Limit enabled jobs whose NextAt is at or
	// before r.Now and whose lease is free or expired, oldest due first.
	// It must be fast with 100,000 jobs (an index on NextAt).
	ClaimDue(ctx context.Context, r ClaimRequest) ([]Job, error)
	// ExtendLease moves the lease's end to until.
	ExtendLease(ctx context.Context, key JobKey, owner string, until time.Time) error
	// SetPendingOrder records the order in flight (and its key) before any
	// challenge is answered, and clears the Placing mark; an empty
	// orderURL clears the order.
	SetPendingOrder(ctx context.Context, key JobKey, owner, orderURL string, keyPEM []byte) error
	// MarkPlacing records that a new order is about to be placed (see
	// Job.Placing); a zero p clears it. SetPendingOrder with a URL and
	// CompleteIssuance clear it too, FailJob keeps it (the order may
	// exist although the CA's answer was lost).
	MarkPlacing(ctx context.Context, key JobKey, owner string, p OrderPlacing) error
	// CompleteIssuance atomically adds iss to the archive, makes it the
	// job's current issuance, clears the pending order and failures,
	// schedules the job per next (see ScheduleUpdate.SeenRevision),
	// releases the lease and records a successful attempt. It clears the
	// job's ChangedAt, or, when the spec changed while the job was
	// leased, sets it to now (the change waits its own pack delay). It
	// sets iss.ID in the result.
	CompleteIssuance(ctx context.Context, owner string, iss Issuance, next ScheduleUpdate, attempt Attempt) (Issuance, error)
	// FailJob records a failed attempt, increments Failures, sets LastError
	// and NextAt, and releases the lease. The pending order is kept so the
	// next attempt can resume it.
	FailJob(ctx context.Context, key JobKey, owner string, attempt Attempt, nextAt time.Time) error
	// Reschedule applies u (see ScheduleUpdate.SeenRevision) and releases
	// the lease without an issuance. ChangedAt is kept.
	Reschedule(ctx context.Context, key JobKey, owner string, u ScheduleUpdate) error
	// ReleaseLease gives a lease up without changing the job (shutdown).
	ReleaseLease(ctx context.Context, key JobKey, owner string) error
	// NextDue returns the earliest time an enabled job can be claimed:
	// its NextAt, or for a leased job the later of NextAt and the lease's
	// end (a job in flight is claimable again only when its owner stops
	// extending the lease); ok is false when there are none. It may
	// answer earlier than that (never later) when many jobs are leased.
	NextDue(ctx context.Context) (at time.Time, ok bool, err error)
	// Job returns one job, or ENOTFOUND.
	Job(ctx context.Context, key JobKey) (Job, error)
	// Jobs lists jobs ordered by spec name and key type.
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
	// Attempts lists a job's attempts, newest first, at most limit.
	Attempts(ctx context.Context, key JobKey, limit int) ([]Attempt, error)
	// RetryNow makes a job due at once (an operator's retry: it clears
	// ChangedAt, so no pack delay holds it), and its spec's waiting names
	// due for a re-test (ReadinessStore).
	RetryNow(ctx context.Context, key JobKey) error
	// RenewNow is RetryNow that also sets RenewRequested: the next
	// attempt orders a new certificate even if the current one is not
	// due (an operator's forced renewal). The issuance that attempt
	// saves clears it (CompleteIssuance); a failed attempt keeps it, so
	// the retries after a failure still renew. ENOTFOUND for an unknown
	// job.
	RenewNow(ctx context.Context, key JobKey) error
	// SetDeployState records the outcome of writing a job's current
	// issuance: a zero d (Error "") marks it written and clears the
	// failures; a failed one increments Failures (d.Failures is
	// ignored). It takes no lease: files are written outside of orders
	// too (at start-up, on the deploy retry schedule). ENOTFOUND for an
	// unknown job.
	SetDeployState(ctx context.Context, key JobKey, d DeployState) error
}
