package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// attemptsKept is how many attempts are kept per job, as in the SQLite
// store: enough to see a failure pattern over days of backoff, bounded so a
// job failing for months does not grow the database.
const attemptsKept = 50

const jobColumns = `spec, key_type, current_id, current_revision, next_at, failures, last_error, last_error_at,
	ari_start, ari_end, ari_retry_at, pending_order_url, pending_key, lease_owner, lease_until, disabled`

const (
	// qClaimDue locks due, unleased jobs in NextAt order, skipping rows
	// another instance is claiming this very moment (SKIP LOCKED), and
	// leases them in the same statement. A row another claim committed
	// meanwhile is re-checked against the WHERE clause after locking
	// (READ COMMITTED's re-evaluation), so it is never leased twice.
	qClaimDue = `WITH due AS (
			SELECT id FROM jobs
			WHERE NOT disabled AND next_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY next_at LIMIT $4
			FOR UPDATE SKIP LOCKED)
		UPDATE jobs SET lease_owner = $1, lease_until = $2 FROM due WHERE jobs.id = due.id
		RETURNING ` + qualifiedJobColumns
	qualifiedJobColumns = `jobs.spec, jobs.key_type, jobs.current_id, jobs.current_revision, jobs.next_at, jobs.failures,
		jobs.last_error, jobs.last_error_at, jobs.ari_start, jobs.ari_end, jobs.ari_retry_at, jobs.pending_order_url,
		jobs.pending_key, jobs.lease_owner, jobs.lease_until, jobs.disabled`
	// qLeasedJob locks the job row until the end of the transaction, so
	// the fenced update that follows cannot interleave with a claim.
	qLeasedJob   = `SELECT id, lease_owner FROM jobs WHERE spec = $1 AND key_type = $2 FOR UPDATE`
	qCompleteJob = `UPDATE jobs SET current_id = $1, current_revision = $2,
		pending_order_url = '', pending_key = NULL, failures = 0, last_error = '', last_error_at = NULL,
		next_at = CASE WHEN target_revision = $2 THEN $3::timestamptz ELSE $4::timestamptz END,
		ari_start = $5, ari_end = $6, ari_retry_at = $7, lease_owner = '', lease_until = NULL
		WHERE id = $8`
	qFailJob = `UPDATE jobs SET failures = failures + 1, last_error = $1, last_error_at = $2,
		next_at = $3, lease_owner = '', lease_until = NULL WHERE id = $4`
	qInsertAttempt = `INSERT INTO attempts
		(job_id, instance, started_at, finished_at, outcome, order_url, error, problem_type)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	qPruneAttempts = `DELETE FROM attempts WHERE job_id = $1 AND id <
		(SELECT id FROM attempts WHERE job_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`
)

type scanner interface{ Scan(dest ...any) error }

func (s *Store) scanJob(sc scanner) (certfleet.Job, error) {
	var (
		j                                       certfleet.Job
		kt                                      string
		currentID                               *int64
		nextAt                                  time.Time
		lastErrorAt, ariStart, ariEnd, ariRetry pgtype.Timestamptz
		leaseUntil                              pgtype.Timestamptz
		pendingKey                              []byte
	)
	err := sc.Scan(&j.Spec, &kt, &currentID, &j.CurrentRevision, &nextAt, &j.Failures, &j.LastError, &lastErrorAt,
		&ariStart, &ariEnd, &ariRetry, &j.PendingOrderURL, &pendingKey, &j.LeaseOwner, &leaseUntil, &j.Disabled)
	if err != nil {
		return j, err
	}
	j.KeyType = certfleet.KeyType(kt)
	if currentID != nil {
		j.CurrentID = *currentID
	}
	j.NextAt = nextAt.UTC()
	j.LastErrorAt = fromTS(lastErrorAt)
	j.ARIStart, j.ARIEnd, j.ARIRetryAt = fromTS(ariStart), fromTS(ariEnd), fromTS(ariRetry)
	j.LeaseUntil = fromTS(leaseUntil)
	if j.PendingKeyPEM, err = s.openKey(pendingKey, pendingKeyAAD(j.Spec, string(j.KeyType), j.PendingOrderURL)); err != nil {
		return j, fmt.Errorf("open pending key of %s: %w", j.JobKey, err)
	}
	return j, nil
}

func (s *Store) collectJobs(rows pgx.Rows) ([]certfleet.Job, error) {
	defer rows.Close()
	var jobs []certfleet.Job
	for rows.Next() {
		j, err := s.scanJob(rows)
		if err != nil {
			return nil, translate(err)
		}
		jobs = append(jobs, j)
	}
	return jobs, translate(rows.Err())
}

// ClaimDue implements certfleet.JobStore in one statement (see qClaimDue).
// Concurrent claims by several instances never return the same job; one may
// return fewer than Limit jobs while another claims, and finds the rest on
// its next call.
func (s *Store) ClaimDue(ctx context.Context, r certfleet.ClaimRequest) ([]certfleet.Job, error) {
	switch {
	case r.Owner == "":
		return nil, certfleet.Errorf(certfleet.EINVALID, "claim due jobs: owner required")
	case r.Lease <= 0:
		return nil, certfleet.Errorf(certfleet.EINVALID, "claim due jobs: lease must be positive")
	case r.Limit <= 0:
		return nil, nil
	}
	if s.pool == nil {
		return nil, errNotOpen
	}
	now := r.Now
	if now.IsZero() {
		now = s.now()
	}
	// One statement is its own transaction.
	rows, err := s.pool.Query(ctx, qClaimDue, r.Owner, now.Add(r.Lease), now, r.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim due jobs: %w", translate(err))
	}
	jobs, err := s.collectJobs(rows)
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

// leasedJob locks the job's row and returns its id when owner holds its
// lease, and an ENOTFOUND or ELEASELOST error otherwise.
func leasedJob(ctx context.Context, tx pgx.Tx, key certfleet.JobKey, owner string) (int64, error) {
	if owner == "" {
		return 0, certfleet.Errorf(certfleet.EINVALID, "job %s: lease owner required", key)
	}
	var (
		id    int64
		lease string
	)
	err := tx.QueryRow(ctx, qLeasedJob, key.Spec, string(key.KeyType)).Scan(&id, &lease)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	} else if err != nil {
		return 0, translate(err)
	}
	if lease != owner {
		return 0, certfleet.Errorf(certfleet.ELEASELOST, "job %s: lease of %q lost (held by %q)", key, owner, lease)
	}
	return id, nil
}

// fenced runs update, with the job's row id as its last argument, after
// checking that owner still holds the job's lease; all in one transaction.
// With notify, the transaction also signals a change.
func (s *Store) fenced(ctx context.Context, key certfleet.JobKey, owner string, notify bool, update string, args ...any) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		id, err := leasedJob(ctx, tx, key, owner)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, update, append(args, id)...); err != nil {
			return translate(err)
		}
		if notify {
			return s.notify(ctx, tx)
		}
		return nil
	})
}

// fencedAttempt is fenced for a job's attempt that ends without an
// issuance (FailJob, DeferJob): update, then the attempt a, in the same
// transaction, which notifies the other instances.
func (s *Store) fencedAttempt(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, update string, args ...any) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		id, err := leasedJob(ctx, tx, key, owner)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, update, append(args, id)...); err != nil {
			return fmt.Errorf("update job: %w", translate(err))
		}
		if err := addAttempt(ctx, tx, id, a); err != nil {
			return err
		}
		return s.notify(ctx, tx)
	})
}

// ExtendLease implements certfleet.JobStore.
func (s *Store) ExtendLease(ctx context.Context, key certfleet.JobKey, owner string, until time.Time) error {
	if err := s.fenced(ctx, key, owner, false, `UPDATE jobs SET lease_until = $1 WHERE id = $2`, until); err != nil {
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
	err = s.fenced(ctx, key, owner, false, `UPDATE jobs SET pending_order_url = $1, pending_key = $2 WHERE id = $3`,
		orderURL, sealed)
	if err != nil {
		return fmt.Errorf("set pending order of %s: %w", key, err)
	}
	return nil
}

// CompleteIssuance implements certfleet.JobStore. When the spec changed
// while the job was leased (its synced revision is no longer
// iss.SpecRevision), the job is made due at once instead of at
// next.NextAt, so the change is not lost. An attempt with an empty Outcome
// is recorded as certfleet.OutcomeIssued; a zero iss.IssuedAt or
// attempt.FinishedAt is set to now.
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		id, err := leasedJob(ctx, tx, key, owner)
		if err != nil {
			return err
		}
		if iss.ID, err = s.insertIssuance(ctx, tx, iss); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qCompleteJob,
			iss.ID, iss.SpecRevision, next.NextAt, now,
			ts(next.ARIStart), ts(next.ARIEnd), ts(next.ARIRetryAt), id); err != nil {
			return fmt.Errorf("update job: %w", translate(err))
		}
		if err := addAttempt(ctx, tx, id, a); err != nil {
			return err
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return iss, fmt.Errorf("complete issuance of %s: %w", key, err)
	}
	// Return the times as they were stored (UTC, microseconds).
	iss.NotBefore, iss.NotAfter, iss.IssuedAt = stored(iss.NotBefore), stored(iss.NotAfter), stored(iss.IssuedAt)
	return iss, nil
}

// FailJob implements certfleet.JobStore. An attempt with an empty Outcome
// is recorded as certfleet.OutcomeFailed; LastErrorAt is the attempt's
// FinishedAt (now when zero).
func (s *Store) FailJob(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, nextAt time.Time) error {
	a, err := storeutil.PrepareJobAttempt("fail", key, a, certfleet.OutcomeFailed, nextAt, s.now())
	if err != nil {
		return err
	}
	if err := s.fencedAttempt(ctx, key, owner, a, qFailJob, a.Error, a.FinishedAt, nextAt); err != nil {
		return fmt.Errorf("fail job %s: %w", key, err)
	}
	return nil
}

// Reschedule implements certfleet.JobStore. When the spec changed while
// the job was leased (its current issuance is of another revision), the
// job is made due at once instead of at u.NextAt.
func (s *Store) Reschedule(ctx context.Context, key certfleet.JobKey, owner string, u certfleet.ScheduleUpdate) error {
	if u.NextAt.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "reschedule %s: next time required", key)
	}
	err := s.fenced(ctx, key, owner, true, `UPDATE jobs SET
		next_at = CASE WHEN current_id IS NOT NULL AND target_revision <> current_revision THEN $1::timestamptz ELSE $2::timestamptz END,
		ari_start = $3, ari_end = $4, ari_retry_at = $5, lease_owner = '', lease_until = NULL WHERE id = $6`,
		s.now(), u.NextAt, ts(u.ARIStart), ts(u.ARIEnd), ts(u.ARIRetryAt))
	if err != nil {
		return fmt.Errorf("reschedule %s: %w", key, err)
	}
	return nil
}

// ReleaseLease implements certfleet.JobStore. It signals a change: the job
// may be due, and another instance should take it at once.
func (s *Store) ReleaseLease(ctx context.Context, key certfleet.JobKey, owner string) error {
	if err := s.fenced(ctx, key, owner, true, `UPDATE jobs SET lease_owner = '', lease_until = NULL WHERE id = $1`); err != nil {
		return fmt.Errorf("release lease of %s: %w", key, err)
	}
	return nil
}

// NextDue implements certfleet.JobStore, from the first entry of the
// jobs_due index. Leased jobs count: their NextAt may be in the past.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	if s.pool == nil {
		return time.Time{}, false, errNotOpen
	}
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT next_at FROM jobs WHERE NOT disabled ORDER BY next_at LIMIT 1`).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, fmt.Errorf("next due job: %w", translate(err))
	}
	return at.UTC(), true, nil
}

// Job implements certfleet.JobStore.
func (s *Store) Job(ctx context.Context, key certfleet.JobKey) (certfleet.Job, error) {
	if s.pool == nil {
		return certfleet.Job{}, errNotOpen
	}
	j, err := s.scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE spec = $1 AND key_type = $2`,
		key.Spec, string(key.KeyType)))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	} else if err != nil {
		return j, fmt.Errorf("load job %s: %w", key, translate(err))
	}
	return j, nil
}

// Jobs implements certfleet.JobStore.
func (s *Store) Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	rows, err := s.pool.Query(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE ($1 = '' OR spec = $1) AND ($2 OR NOT disabled) AND (NOT $3 OR lease_owner <> '')
		ORDER BY spec, key_type`, f.Spec, f.IncludeDisabled, f.Leased)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", translate(err))
	}
	jobs, err := s.collectJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// RetryNow implements certfleet.JobStore. It leaves a lease in place: the
// holder's outcome still applies, and the job is claimable once it ends.
func (s *Store) RetryNow(ctx context.Context, key certfleet.JobKey) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE jobs SET next_at = $1 WHERE spec = $2 AND key_type = $3`,
			s.now(), key.Spec, string(key.KeyType))
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("retry %s: %w", key, err)
	}
	return nil
}

// addAttempt records an attempt of job id and prunes the job's attempts to
// the newest attemptsKept, in the caller's transaction (which holds the
// job's row lock, so prunes of one job never interleave).
func addAttempt(ctx context.Context, tx pgx.Tx, id int64, a certfleet.Attempt) error {
	if _, err := tx.Exec(ctx, qInsertAttempt,
		id, a.Instance, ts(a.StartedAt), ts(a.FinishedAt), a.Outcome, a.OrderURL, a.Error, a.ProblemType); err != nil {
		return fmt.Errorf("record attempt: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, qPruneAttempts, id, attemptsKept-1); err != nil {
		return fmt.Errorf("prune attempts: %w", translate(err))
	}
	return nil
}

// Attempts implements certfleet.JobStore; limit <= 0 means all that are
// kept (the newest 50). An unknown job is ENOTFOUND.
func (s *Store) Attempts(ctx context.Context, key certfleet.JobKey, limit int) ([]certfleet.Attempt, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	var lim any
	if limit > 0 {
		lim = limit
	}
	// One statement: the job's existence and its attempts from one
	// snapshot. A job without attempts yields one row of NULLs.
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.instance, a.started_at, a.finished_at, a.outcome, a.order_url,
			a.error, a.problem_type
		FROM jobs j LEFT JOIN LATERAL (
			SELECT * FROM attempts WHERE job_id = j.id ORDER BY id DESC LIMIT $3) a ON true
		WHERE j.spec = $1 AND j.key_type = $2
		ORDER BY a.id DESC`, key.Spec, string(key.KeyType), lim)
	if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
	}
	defer rows.Close()
	found := false
	out := []certfleet.Attempt{}
	for rows.Next() {
		found = true
		var (
			id                                        *int64
			instance, outcome, orderURL, msg, problem *string
			started, finished                         pgtype.Timestamptz
		)
		if err := rows.Scan(&id, &instance, &started, &finished, &outcome, &orderURL, &msg, &problem); err != nil {
			return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
		}
		if id == nil {
			continue
		}
		out = append(out, certfleet.Attempt{
			ID: *id, JobKey: key, Instance: *instance, StartedAt: fromTS(started), FinishedAt: fromTS(finished),
			Outcome: *outcome, OrderURL: *orderURL, Error: *msg, ProblemType: *problem,
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
	}
	if !found {
		return nil, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
