package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/certfleet/certfleet"
)

// attemptsKept is how many attempts are kept per job: enough to see a
// failure pattern over days of backoff, bounded so a job failing for months
// does not grow the database. Older ones are pruned when a new one is added.
const attemptsKept = 50

// noLimit is the LIMIT of a listing without one: SQLite refuses LIMIT NULL
// and PostgreSQL a negative LIMIT, so both get a number no table reaches.
const noLimit = math.MaxInt64

const jobColumns = `spec, key_type, current_id, current_revision, next_at, failures, last_error, last_error_at,
	ari_start, ari_end, ari_retry_at, pending_order_url, pending_key, lease_owner, lease_until, disabled,
	deploy_error, deploy_failures, deploy_failed_at, deploy_next_at, target_revision, changed_at, renew_requested_at,
	placing_order`

var (
	// qClaimDue selects due, unleased jobs in NextAt order and leases them
	// in the same statement, so selection and leasing cannot interleave
	// with another claim.
	//
	// SQLite: one writer at a time; the subquery walks the jobs_due index
	// (its predicate is disabled = 0, which the query must repeat for the
	// planner to use it) and stops after $4 matches.
	//
	// PostgreSQL: the due rows are locked in NextAt order, skipping rows
	// another instance is claiming this very moment (SKIP LOCKED). A row
	// another claim committed meanwhile is re-checked against the WHERE
	// clause after locking (READ COMMITTED's re-evaluation), so it is
	// never leased twice. Abandoned work comes first: a job whose lease
	// ran out with its owner still named (an instance died or lost the
	// store while working on it, its order perhaps in flight; or gave it
	// back after a store outage by ending the lease now) is claimed
	// before the due jobs nobody started, so a takeover does not wait
	// behind a backlog (issue 16). They are found through jobs_leased,
	// which holds only leased rows (a few per instance).
	//
	// SQLite has one instance: a dead process's leases are released when
	// the next one starts (manager.ReleaseLeases), so its claim keeps the
	// plain walk of jobs_due.
	qClaimDue = SQLEach(`UPDATE jobs SET lease_owner = $1, lease_until = $2
		WHERE id IN (
			SELECT id FROM jobs
			WHERE disabled = 0 AND next_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY next_at LIMIT $4)
		RETURNING `+jobColumns,
		`WITH abandoned AS (
			SELECT id, 0 AS rank, lease_until AS at FROM jobs
			WHERE lease_owner <> '' AND lease_until <= $3 AND NOT disabled AND next_at <= $3
			ORDER BY lease_until LIMIT $4
			FOR UPDATE SKIP LOCKED),
		due AS (
			SELECT id, 1 AS rank, next_at AS at FROM jobs
			WHERE NOT disabled AND next_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY next_at LIMIT $4
			FOR UPDATE SKIP LOCKED),
		pick AS (
			SELECT id FROM (SELECT id, rank, at FROM abandoned UNION ALL SELECT id, rank, at FROM due) u
			GROUP BY id ORDER BY min(rank), min(at) LIMIT $4)
		UPDATE jobs SET lease_owner = $1, lease_until = $2 FROM pick WHERE jobs.id = pick.id
		RETURNING jobs.spec, jobs.key_type, jobs.current_id, jobs.current_revision, jobs.next_at, jobs.failures,
			jobs.last_error, jobs.last_error_at, jobs.ari_start, jobs.ari_end, jobs.ari_retry_at, jobs.pending_order_url,
			jobs.pending_key, jobs.lease_owner, jobs.lease_until, jobs.disabled,
			jobs.deploy_error, jobs.deploy_failures, jobs.deploy_failed_at, jobs.deploy_next_at,
			jobs.target_revision, jobs.changed_at, jobs.renew_requested_at, jobs.placing_order`)
	// qLeasedJob reads the lease of a job. On PostgreSQL it locks the row
	// until the end of the transaction, so the fenced update that follows
	// cannot interleave with a claim; a SQLite write transaction already
	// excludes every other writer.
	qLeasedJob = SQLEach(`SELECT id, lease_owner FROM jobs WHERE spec = $1 AND key_type = $2`,
		`SELECT id, lease_owner FROM jobs WHERE spec = $1 AND key_type = $2 FOR UPDATE`)
	// qCompleteJob: PostgreSQL must be told the type of the CASE's
	// parameters, SQLite cannot be. The spec changed while the job was
	// leased when its revision is neither the one issued ($2) nor the
	// one seen at claim ($9, ScheduleUpdate.SeenRevision; '' matches
	// no revision): then the job is due at once ($4, now) and the
	// change's pack delay starts now; otherwise it is scheduled ($3)
	// and no change is pending (changed_at NULL).
	qCompleteJob = SQLEach(`UPDATE jobs SET current_id = $1, current_revision = $2,
		pending_order_url = '', pending_key = NULL, placing_order = '', failures = 0, last_error = '', last_error_at = NULL,
		next_at = CASE WHEN target_revision = $2 OR target_revision = $9 THEN $3 ELSE $4 END,
		changed_at = CASE WHEN target_revision = $2 OR target_revision = $9 THEN NULL ELSE $4 END,
		ari_start = $5, ari_end = $6, ari_retry_at = $7, lease_owner = '', lease_until = NULL, renew_requested_at = NULL
		WHERE id = $8`,
		`UPDATE jobs SET current_id = $1, current_revision = $2,
		pending_order_url = '', pending_key = NULL, placing_order = '', failures = 0, last_error = '', last_error_at = NULL,
		next_at = CASE WHEN target_revision = $2 OR target_revision = $9::text THEN $3::timestamptz ELSE $4::timestamptz END,
		changed_at = CASE WHEN target_revision = $2 OR target_revision = $9::text THEN NULL ELSE $4::timestamptz END,
		ari_start = $5, ari_end = $6, ari_retry_at = $7, lease_owner = '', lease_until = NULL, renew_requested_at = NULL
		WHERE id = $8`)
	// qFailJob: the changes the failed order held are taken (the retry
	// orders them without a pack delay); a change after it opens a new
	// one.
	qFailJob = SQL(`UPDATE jobs SET failures = failures + 1, last_error = $1, last_error_at = $2,
		next_at = $3, changed_at = NULL, lease_owner = '', lease_until = NULL WHERE id = $4`)
	qDeferJob    = SQL(`UPDATE jobs SET next_at = $1, lease_owner = '', lease_until = NULL WHERE id = $2`)
	qExtendLease = SQL(`UPDATE jobs SET lease_until = $1 WHERE id = $2`)
	// qSetPendingOrder: an order whose URL is saved is no longer being
	// placed (an empty URL clears the order and keeps no mark either).
	qSetPendingOrder = SQL(`UPDATE jobs SET pending_order_url = $1, pending_key = $2, placing_order = '' WHERE id = $3`)
	qMarkPlacing     = SQL(`UPDATE jobs SET placing_order = $1 WHERE id = $2`)
	// qReschedule: due at once ($1, now) when the spec changed while the
	// job was leased: its revision is not the one seen at claim ($7,
	// ScheduleUpdate.SeenRevision); without $7, whenever the current
	// issuance is of another revision. Else at $2.
	qReschedule = SQLEach(`UPDATE jobs SET
		next_at = CASE WHEN target_revision = $7 THEN $2
			WHEN $7 <> '' OR (current_id IS NOT NULL AND target_revision <> current_revision) THEN $1 ELSE $2 END,
		ari_start = $3, ari_end = $4, ari_retry_at = $5, lease_owner = '', lease_until = NULL WHERE id = $6`,
		`UPDATE jobs SET
		next_at = CASE WHEN target_revision = $7::text THEN $2::timestamptz
			WHEN $7::text <> '' OR (current_id IS NOT NULL AND target_revision <> current_revision) THEN $1::timestamptz ELSE $2::timestamptz END,
		ari_start = $3, ari_end = $4, ari_retry_at = $5, lease_owner = '', lease_until = NULL WHERE id = $6`)
	qReleaseLease  = SQL(`UPDATE jobs SET lease_owner = '', lease_until = NULL WHERE id = $1`)
	qInsertAttempt = SQL(`INSERT INTO attempts
		(job_id, instance, started_at, finished_at, outcome, order_url, error, problem_type)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`)
	qPruneAttempts = SQL(`DELETE FROM attempts WHERE job_id = $1 AND id <
		(SELECT id FROM attempts WHERE job_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`)
	// qRetryNow: an operator's retry is now, whatever pack delay the job
	// was collecting changes for.
	qRetryNow = SQL(`UPDATE jobs SET next_at = $1, changed_at = NULL WHERE spec = $2 AND key_type = $3`)
	// qRenewNow is qRetryNow that also asks for a new certificate (a
	// forced retry; cleared by qCompleteJob).
	qRenewNow = SQL(`UPDATE jobs SET next_at = $1, changed_at = NULL, renew_requested_at = $1 WHERE spec = $2 AND key_type = $3`)
	// qCurrentSerial reads the serial and fingerprint of a job's current
	// issuance (CompleteIssuance tried again).
	qCurrentSerial = SQL(`SELECT i.id, i.serial, i.fingerprint FROM jobs j JOIN issuances i ON i.id = j.current_id
		WHERE j.spec = $1 AND j.key_type = $2`)

	qJob = SQL(`SELECT ` + jobColumns + ` FROM jobs WHERE spec = $1 AND key_type = $2`)
	// qNextDue reads the first entries of the jobs_due index, up to the
	// first unleased one (NextDue); SQLite's partial index is found only
	// by its own predicate.
	qNextDue = SQLEach(`SELECT next_at, lease_until FROM jobs WHERE disabled = 0 ORDER BY next_at LIMIT `+nextDueScan,
		`SELECT next_at, lease_until FROM jobs WHERE NOT disabled ORDER BY next_at LIMIT `+nextDueScan)
	qJobs = SQL(`SELECT ` + jobColumns + ` FROM jobs
		WHERE ($1 = '' OR spec = $1) AND ($2 OR NOT disabled) AND (NOT $3 OR lease_owner <> '')
			AND (NOT $4 OR deploy_error <> '') AND (NOT $5 OR failures > 0 OR deploy_error <> '')
		ORDER BY spec, key_type`)
	// qDeployed marks a job's current issuance written; qNotWritten
	// records a failed try to write it.
	qDeployed = SQL(`UPDATE jobs SET deploy_error = '', deploy_failures = 0, deploy_failed_at = NULL, deploy_next_at = NULL
		WHERE spec = $1 AND key_type = $2`)
	qNotWritten = SQL(`UPDATE jobs SET deploy_error = $1, deploy_failures = deploy_failures + 1, deploy_failed_at = $2,
		deploy_next_at = $3 WHERE spec = $4 AND key_type = $5`)
	// qAttempts reads a job's existence and its newest attempts in one
	// statement, so both come from one snapshot: a job without attempts
	// is one row of NULLs, an unknown job no row at all.
	qAttempts = SQL(`SELECT a.id, a.instance, a.started_at, a.finished_at, a.outcome, a.order_url, a.error, a.problem_type
		FROM jobs j LEFT JOIN attempts a ON a.job_id = j.id
		WHERE j.spec = $1 AND j.key_type = $2
		ORDER BY a.id DESC LIMIT $3`)
)

// scanJob reads a row of jobColumns.
func (s *Store) scanJob(r Row) (certfleet.Job, error) {
	var (
		j          certfleet.Job
		kt         string
		currentID  *int64
		pendingKey []byte
		placing    string
	)
	err := r.Scan(&j.Spec, &kt, &currentID, &j.CurrentRevision, &j.NextAt, &j.Failures, &j.LastError, &j.LastErrorAt,
		&j.ARIStart, &j.ARIEnd, &j.ARIRetryAt, &j.PendingOrderURL, &pendingKey, &j.LeaseOwner, &j.LeaseUntil, &j.Disabled,
		&j.Deploy.Error, &j.Deploy.Failures, &j.Deploy.FailedAt, &j.Deploy.NextAt, &j.TargetRevision, &j.ChangedAt, &j.RenewRequested,
		&placing)
	if err != nil {
		return j, err
	}
	if placing != "" {
		if err := json.Unmarshal([]byte(placing), &j.Placing); err != nil {
			return j, fmt.Errorf("read the placing mark of %s/%s: %w", j.Spec, kt, err)
		}
	}
	j.KeyType = certfleet.KeyType(kt)
	if currentID != nil {
		j.CurrentID = *currentID
	}
	if j.PendingKeyPEM, err = s.openKey(pendingKey, pendingKeyAAD(j.Spec, string(j.KeyType), j.PendingOrderURL)); err != nil {
		return j, fmt.Errorf("open pending key of %s: %w", j.JobKey, err)
	}
	return j, nil
}

// scanJobs reads every row of rows (of jobColumns) and closes them.
func (s *Store) scanJobs(rows Rows) ([]certfleet.Job, error) {
	defer rows.Close()
	var jobs []certfleet.Job
	for rows.Next() {
		j, err := s.scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// ClaimDue implements certfleet.JobStore in one statement (see qClaimDue),
// which walks the due jobs in NextAt order and stops after Limit matches.
// Concurrent claims, by goroutines or by instances sharing a PostgreSQL
// database, never return the same job; on PostgreSQL one may return fewer
// than Limit jobs while another claims, and finds the rest on its next
// call.
func (s *Store) ClaimDue(ctx context.Context, r certfleet.ClaimRequest) ([]certfleet.Job, error) {
	switch {
	case r.Owner == "":
		return nil, certfleet.Errorf(certfleet.EINVALID, "claim due jobs: owner required")
	case r.Lease <= 0:
		return nil, certfleet.Errorf(certfleet.EINVALID, "claim due jobs: lease must be positive")
	case r.Limit <= 0:
		return nil, nil
	}
	now := r.Now
	if now.IsZero() {
		now = s.now()
	}
	var jobs []certfleet.Job
	claim := func(q Querier) error {
		rows, err := q.Query(qClaimDue, r.Owner, now.Add(r.Lease), now, r.Limit)
		if err != nil {
			return err
		}
		jobs, err = s.scanJobs(rows)
		return err
	}
	var err error
	if a, ok := s.db.(Autocommitter); ok {
		// One statement is its own transaction: the claim stands even
		// if a row cannot be read back (its lease then expires).
		err = claim(a.Autocommit(ctx))
	} else {
		err = s.write(ctx, func(tx Tx) error { return claim(tx) })
	}
	if err != nil {
		return nil, fmt.Errorf("claim due jobs: %w", err)
	}
	// RETURNING gives no order guarantee.
	sort.Slice(jobs, func(a, b int) bool {
		if !jobs[a].NextAt.Equal(jobs[b].NextAt) {
			return jobs[a].NextAt.Before(jobs[b].NextAt)
		}
		return jobs[a].JobKey.String() < jobs[b].JobKey.String()
	})
	return jobs, nil
}

// leasedJob returns the row id of the job when owner holds its lease, and
// an ENOTFOUND or ELEASELOST error otherwise. On PostgreSQL the row stays
// locked until tx ends (qLeasedJob).
func leasedJob(tx Tx, key certfleet.JobKey, owner string) (int64, error) {
	if owner == "" {
		return 0, certfleet.Errorf(certfleet.EINVALID, "job %s: lease owner required", key)
	}
	var (
		id    int64
		lease string
	)
	err := tx.QueryRow(qLeasedJob, key.Spec, string(key.KeyType)).Scan(&id, &lease)
	if noRows(err) {
		return 0, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	} else if err != nil {
		return 0, err
	}
	if lease != owner {
		return 0, certfleet.Errorf(certfleet.ELEASELOST, "job %s: lease of %q lost (held by %q)", key, owner, lease)
	}
	return id, nil
}

// notice says whether a fenced change tells the other instances
// (certfleet.Notifier): a change that may make the job due, or take it
// out of a lease, does; lease bookkeeping does not.
type notice bool

const (
	quiet    notice = false
	announce notice = true
)

// fenced runs update, with the job's row id as its last argument, after
// checking that owner still holds the job's lease; all in one transaction.
func (s *Store) fenced(ctx context.Context, key certfleet.JobKey, owner string, n notice, update Q, args ...any) error {
	return s.write(ctx, func(tx Tx) error {
		id, err := leasedJob(tx, key, owner)
		if err != nil {
			return err
		}
		tx.Queue(update, append(args, id)...)
		if n == announce {
			return tx.Notify()
		}
		return nil
	})
}

// fencedAttempt is fenced for a job's attempt that ends without an
// issuance (FailJob, DeferJob): update, then the attempt a, in the same
// transaction, which notifies the other instances. A failed attempt ends
// the job's wait for a rate-limit budget (qLeaveQueue): a job backing off
// must not hold a place that the jobs behind it count.
func (s *Store) fencedAttempt(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, update Q, args ...any) error {
	return s.write(ctx, func(tx Tx) error {
		id, err := leasedJob(tx, key, owner)
		if err != nil {
			return err
		}
		tx.Queue(update, append(args, id)...)
		if a.Outcome != certfleet.OutcomeDeferred {
			tx.Queue(qLeaveQueue, id)
		}
		addAttempt(tx, id, a)
		return tx.Notify()
	})
}

// addAttempt queues the recording of an attempt of job id and the pruning
// of the job's attempts to the newest attemptsKept, in the caller's
// transaction (which holds the job's row lock on PostgreSQL, so prunes of
// one job never interleave).
func addAttempt(tx Tx, id int64, a certfleet.Attempt) {
	tx.Queue(qInsertAttempt,
		id, a.Instance, NullTime(a.StartedAt), NullTime(a.FinishedAt), a.Outcome, a.OrderURL, a.Error, a.ProblemType)
	tx.Queue(qPruneAttempts, id, attemptsKept-1)
}

// ExtendLease implements certfleet.JobStore.
func (s *Store) ExtendLease(ctx context.Context, key certfleet.JobKey, owner string, until time.Time) error {
	if err := s.fenced(ctx, key, owner, quiet, qExtendLease, until); err != nil {
		return fmt.Errorf("extend lease of %s: %w", key, err)
	}
	return nil
}

// SetPendingOrder implements certfleet.JobStore.
func (s *Store) SetPendingOrder(ctx context.Context, key certfleet.JobKey, owner, orderURL string, keyPEM []byte) error {
	if orderURL == "" {
		keyPEM = nil
	}
	sealed, err := s.sealKey(keyPEM, pendingKeyAAD(key.Spec, string(key.KeyType), orderURL))
	if err != nil {
		return fmt.Errorf("set pending order of %s: %w", key, err)
	}
	if err := s.fenced(ctx, key, owner, quiet, qSetPendingOrder, orderURL, sealed); err != nil {
		return fmt.Errorf("set pending order of %s: %w", key, err)
	}
	return nil
}

// MarkPlacing implements certfleet.JobStore. A zero p clears the mark.
func (s *Store) MarkPlacing(ctx context.Context, key certfleet.JobKey, owner string, p certfleet.OrderPlacing) error {
	v := ""
	if !p.At.IsZero() {
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("mark order placing of %s: %w", key, err)
		}
		v = string(b)
	}
	if err := s.fenced(ctx, key, owner, quiet, qMarkPlacing, v); err != nil {
		return fmt.Errorf("mark order placing of %s: %w", key, err)
	}
	return nil
}

// CompleteIssuance implements certfleet.JobStore. When the spec changed
// while the job was leased (its synced revision is no longer
// iss.SpecRevision), the job is made due at once instead of at
// next.NextAt, so the change is not lost. An attempt with an empty Outcome
// is recorded as certfleet.OutcomeIssued; a zero iss.IssuedAt or
// attempt.FinishedAt is set to now.
//
// It may be called again with the same certificate after an error that
// left the outcome unknown (the connection broke at commit): when the
// lease is gone because that very certificate (serial and fingerprint)
// became the job's current one, it returns the stored issuance and
// changes nothing (issue 16).
func (s *Store) CompleteIssuance(ctx context.Context, owner string, iss certfleet.Issuance, next certfleet.ScheduleUpdate, a certfleet.Attempt) (certfleet.Issuance, error) {
	key := certfleet.JobKey{Spec: iss.Spec, KeyType: iss.KeyType}
	if iss.Spec == "" || iss.KeyType == "" {
		return iss, certfleet.Errorf(certfleet.EINVALID, "complete issuance: spec and key type required")
	}
	if next.NextAt.IsZero() {
		return iss, certfleet.Errorf(certfleet.EINVALID, "complete issuance of %s: next renewal time required", key)
	}
	now := s.now()
	if iss.IssuedAt.IsZero() {
		iss.IssuedAt = now
	}
	a.JobKey = key
	if a.Outcome == "" {
		a.Outcome = certfleet.OutcomeIssued
	}
	if a.OrderURL == "" {
		a.OrderURL = iss.OrderURL
	}
	if a.FinishedAt.IsZero() {
		a.FinishedAt = now
	}
	var already bool
	err := s.write(ctx, func(tx Tx) error {
		already = false
		id, err := leasedJob(tx, key, owner)
		if certfleet.ErrorCode(err) == certfleet.ELEASELOST {
			var (
				cur         int64
				serial, fpr string
			)
			if cerr := tx.QueryRow(qCurrentSerial, key.Spec, string(key.KeyType)).Scan(&cur, &serial, &fpr); cerr == nil &&
				serial == iss.Serial && fpr == iss.Fingerprint {
				iss.ID, already = cur, true
				return nil
			}
		}
		if err != nil {
			return err
		}
		if iss.ID, err = s.insertIssuance(tx, iss); err != nil {
			return err
		}
		tx.Queue(qCompleteJob, iss.ID, iss.SpecRevision, next.NextAt, now,
			NullTime(next.ARIStart), NullTime(next.ARIEnd), NullTime(next.ARIRetryAt), id, next.SeenRevision)
		addAttempt(tx, id, a)
		return tx.Notify()
	})
	if err != nil {
		return iss, fmt.Errorf("complete issuance of %s: %w", key, err)
	}
	if already {
		stored, err := s.Issuance(ctx, iss.ID)
		if err != nil {
			return iss, fmt.Errorf("complete issuance of %s: already stored as %d: %w", key, iss.ID, err)
		}
		return stored, nil
	}
	// Return the times as they were stored (UTC, microseconds).
	iss.NotBefore, iss.NotAfter, iss.IssuedAt = Stored(iss.NotBefore), Stored(iss.NotAfter), Stored(iss.IssuedAt)
	return iss, nil
}

// FailJob implements certfleet.JobStore. An attempt with an empty Outcome
// is recorded as certfleet.OutcomeFailed; LastErrorAt is the attempt's
// FinishedAt (now when zero).
func (s *Store) FailJob(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, nextAt time.Time) error {
	a, err := prepareJobAttempt("fail", key, a, certfleet.OutcomeFailed, nextAt, s.now())
	if err != nil {
		return err
	}
	if err := s.fencedAttempt(ctx, key, owner, a, qFailJob, a.Error, a.FinishedAt, nextAt); err != nil {
		return fmt.Errorf("fail job %s: %w", key, err)
	}
	return nil
}

// DeferJob implements certfleet.RateLimitStore. An attempt with an empty
// Outcome is recorded as certfleet.OutcomeDeferred.
func (s *Store) DeferJob(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, nextAt time.Time) error {
	a, err := prepareJobAttempt("defer", key, a, certfleet.OutcomeDeferred, nextAt, s.now())
	if err != nil {
		return err
	}
	if err := s.fencedAttempt(ctx, key, owner, a, qDeferJob, nextAt); err != nil {
		return fmt.Errorf("defer job %s: %w", key, err)
	}
	return nil
}

// Reschedule implements certfleet.JobStore. When the spec changed while
// the job was leased (its current issuance is of another revision), the
// job is made due at once instead of at u.NextAt. A job found not due
// leaves the queue of a rate-limit budget it waited in.
func (s *Store) Reschedule(ctx context.Context, key certfleet.JobKey, owner string, u certfleet.ScheduleUpdate) error {
	if u.NextAt.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "reschedule %s: next time required", key)
	}
	err := s.write(ctx, func(tx Tx) error {
		id, err := leasedJob(tx, key, owner)
		if err != nil {
			return err
		}
		tx.Queue(qReschedule, s.now(), u.NextAt, NullTime(u.ARIStart), NullTime(u.ARIEnd), NullTime(u.ARIRetryAt), id, u.SeenRevision)
		tx.Queue(qLeaveQueue, id) // not due: it waits for no budget
		return tx.Notify()
	})
	if err != nil {
		return fmt.Errorf("reschedule %s: %w", key, err)
	}
	return nil
}

// ReleaseLease implements certfleet.JobStore. It signals a change: the job
// may be due, and another instance should take it at once.
func (s *Store) ReleaseLease(ctx context.Context, key certfleet.JobKey, owner string) error {
	if err := s.fenced(ctx, key, owner, announce, qReleaseLease); err != nil {
		return fmt.Errorf("release lease of %s: %w", key, err)
	}
	return nil
}

// NextDue implements certfleet.JobStore, from the first entry of the
// jobs_due index. Leased jobs count: their NextAt may be in the past.
//
// It walks the jobs in NextAt order: a leased job (in flight, here or on
// another instance) can be claimed at the later of its NextAt and its
// lease's end; the first unleased one ends the walk, since every later
// job's NextAt is later still. Leased jobs are few (the instances'
// concurrency), so the walk is short; past nextDueScan of them the
// NextAt of the last one read is returned, which is never later than
// the answer (a caller wakes early rather than late).
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	q, err := s.read(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	rows, err := q.Query(qNextDue)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due job: %w", err)
	}
	defer rows.Close()
	var (
		best    time.Time
		n       int
		nextAt  time.Time
		leaseTo time.Time
	)
	for rows.Next() {
		if err := rows.Scan(&nextAt, &leaseTo); err != nil {
			return time.Time{}, false, fmt.Errorf("next due job: %w", err)
		}
		n++
		at := nextAt
		if leaseTo.After(at) {
			at = leaseTo
		}
		if best.IsZero() || at.Before(best) {
			best = at
		}
		if leaseTo.IsZero() {
			return best, true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("next due job: %w", err)
	}
	if n == 0 {
		return time.Time{}, false, nil
	}
	if n == nextDueScanN && nextAt.Before(best) {
		best = nextAt // more leased jobs than read: the next may come sooner
	}
	return best, true, nil
}

// nextDueScan bounds NextDue's walk of leased jobs: more than the jobs in
// flight on a few instances at their concurrency.
const (
	nextDueScan  = "64"
	nextDueScanN = 64
)

// Job implements certfleet.JobStore.
func (s *Store) Job(ctx context.Context, key certfleet.JobKey) (certfleet.Job, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Job{}, err
	}
	j, err := s.scanJob(q.QueryRow(qJob, key.Spec, string(key.KeyType)))
	if noRows(err) {
		return j, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	} else if err != nil {
		return j, fmt.Errorf("load job %s: %w", key, err)
	}
	return j, nil
}

// Jobs implements certfleet.JobStore.
func (s *Store) Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qJobs, f.Spec, f.IncludeDisabled, f.Leased, f.NotWritten, f.Failing)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs, err := s.scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// RetryNow implements certfleet.JobStore. It leaves a lease in place: the
// holder's outcome still applies, and the job is claimable once it ends.
func (s *Store) RetryNow(ctx context.Context, key certfleet.JobKey) error {
	return s.retryNow(ctx, key, qRetryNow)
}

// RenewNow implements certfleet.JobStore: RetryNow, and the next attempt
// renews even a certificate that is not due.
func (s *Store) RenewNow(ctx context.Context, key certfleet.JobKey) error {
	return s.retryNow(ctx, key, qRenewNow)
}

func (s *Store) retryNow(ctx context.Context, key certfleet.JobKey, q Q) error {
	err := s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(q, s.now(), key.Spec, string(key.KeyType))
		if err != nil {
			return err
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
		}
		// Issue 14: an operator's retry re-tests the spec's waiting
		// names now, whatever their backoff.
		if _, err := tx.Exec(qRetestNow, s.now(), key.Spec); err != nil {
			return err
		}
		return tx.Notify()
	})
	if err != nil {
		return fmt.Errorf("retry %s: %w", key, err)
	}
	return nil
}

// Attempts implements certfleet.JobStore; limit <= 0 means all that are
// kept (the newest 50). An unknown job is ENOTFOUND.
func (s *Store) Attempts(ctx context.Context, key certfleet.JobKey, limit int) ([]certfleet.Attempt, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	lim := int64(noLimit)
	if limit > 0 {
		lim = int64(limit)
	}
	rows, err := q.Query(qAttempts, key.Spec, string(key.KeyType), lim)
	if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, err)
	}
	defer rows.Close()
	found := false
	var out []certfleet.Attempt
	for rows.Next() {
		found = true
		var (
			id                                        *int64
			instance, outcome, orderURL, msg, problem *string
			started, finished                         time.Time
		)
		if err := rows.Scan(&id, &instance, &started, &finished, &outcome, &orderURL, &msg, &problem); err != nil {
			return nil, fmt.Errorf("list attempts of %s: %w", key, err)
		}
		if id == nil {
			continue // the job has no attempts
		}
		out = append(out, certfleet.Attempt{
			ID: *id, JobKey: key, Instance: *instance, StartedAt: started, FinishedAt: finished,
			Outcome: *outcome, OrderURL: *orderURL, Error: *msg, ProblemType: *problem,
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, err)
	}
	if !found {
		return nil, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	}
	return out, nil
}

// prepareJobAttempt validates a FailJob or DeferJob call (op, "fail" or
// "defer", names it in the error) and returns the attempt to record: for
// key, with outcome unless a has one, finished at now unless a says when.
func prepareJobAttempt(op string, key certfleet.JobKey, a certfleet.Attempt, outcome string, nextAt, now time.Time) (certfleet.Attempt, error) {
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

// SetDeployState implements certfleet.JobStore.
func (s *Store) SetDeployState(ctx context.Context, key certfleet.JobKey, d certfleet.DeployState) error {
	err := s.write(ctx, func(tx Tx) error {
		var (
			n   int64
			err error
		)
		if d.Error == "" {
			n, err = tx.Exec(qDeployed, key.Spec, string(key.KeyType))
		} else {
			at := d.FailedAt
			if at.IsZero() {
				at = s.now()
			}
			n, err = tx.Exec(qNotWritten, d.Error, at, NullTime(d.NextAt), key.Spec, string(key.KeyType))
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record the deploy state of %s: %w", key, err)
	}
	return nil
}
