package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

// attemptsKept is how many attempts are kept per job: enough to see a
// failure pattern over days of backoff, bounded so a job failing for months
// does not grow the database. Older ones are pruned when a new one is added.
const attemptsKept = 50

const jobColumns = `spec, key_type, current_id, current_revision, next_at, failures, last_error, last_error_at,
	ari_start, ari_end, ari_retry_at, pending_order_url, pending_key, lease_owner, lease_until, disabled`

// Statements of the write path, prepared at Open (hotWrites).
const (
	qClaimDue = `UPDATE jobs SET lease_owner = ?1, lease_until = ?2
		WHERE id IN (
			SELECT id FROM jobs
			WHERE disabled = 0 AND next_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3)
			ORDER BY next_at LIMIT ?4)
		RETURNING ` + jobColumns
	qLeasedJob   = `SELECT id, lease_owner FROM jobs WHERE spec = ? AND key_type = ?`
	qCompleteJob = `UPDATE jobs SET current_id = ?1, current_revision = ?2,
		pending_order_url = '', pending_key = NULL, failures = 0, last_error = '', last_error_at = NULL,
		next_at = CASE WHEN target_revision = ?2 THEN ?3 ELSE ?4 END,
		ari_start = ?5, ari_end = ?6, ari_retry_at = ?7, lease_owner = '', lease_until = NULL
		WHERE id = ?8`
	qFailJob = `UPDATE jobs SET failures = failures + 1, last_error = ?, last_error_at = ?,
		next_at = ?, lease_owner = '', lease_until = NULL WHERE id = ?`
	qExtendLease     = `UPDATE jobs SET lease_until = ? WHERE id = ?`
	qSetPendingOrder = `UPDATE jobs SET pending_order_url = ?, pending_key = ? WHERE id = ?`
	qReschedule      = `UPDATE jobs SET
		next_at = CASE WHEN current_id IS NOT NULL AND target_revision != current_revision THEN ? ELSE ? END,
		ari_start = ?, ari_end = ?, ari_retry_at = ?, lease_owner = '', lease_until = NULL WHERE id = ?`
	qReleaseLease  = `UPDATE jobs SET lease_owner = '', lease_until = NULL WHERE id = ?`
	qInsertAttempt = `INSERT INTO attempts
		(job_id, instance, started_at, finished_at, outcome, order_url, error, problem_type)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qPruneAttempts = `DELETE FROM attempts WHERE job_id = ?1 AND id <
		(SELECT id FROM attempts WHERE job_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`

	qJob     = `SELECT ` + jobColumns + ` FROM jobs WHERE spec = ? AND key_type = ?`
	qNextDue = `SELECT next_at FROM jobs WHERE disabled = 0 ORDER BY next_at LIMIT 1`
)

type scanner interface{ Scan(dest ...any) error }

func (s *Store) scanJob(sc scanner) (certfleet.Job, error) {
	var (
		j                                       certfleet.Job
		kt                                      string
		currentID                               sql.NullInt64
		nextAt                                  int64
		lastErrorAt, ariStart, ariEnd, ariRetry sql.NullInt64
		leaseUntil                              sql.NullInt64
		pendingKey                              []byte
	)
	err := sc.Scan(&j.Spec, &kt, &currentID, &j.CurrentRevision, &nextAt, &j.Failures, &j.LastError, &lastErrorAt,
		&ariStart, &ariEnd, &ariRetry, &j.PendingOrderURL, &pendingKey, &j.LeaseOwner, &leaseUntil, &j.Disabled)
	if err != nil {
		return j, err
	}
	j.KeyType = certfleet.KeyType(kt)
	j.CurrentID = currentID.Int64
	j.NextAt = fromTS(sql.NullInt64{Int64: nextAt, Valid: true})
	j.LastErrorAt = fromTS(lastErrorAt)
	j.ARIStart, j.ARIEnd, j.ARIRetryAt = fromTS(ariStart), fromTS(ariEnd), fromTS(ariRetry)
	j.LeaseUntil = fromTS(leaseUntil)
	if j.PendingKeyPEM, err = s.openKey(pendingKey, pendingKeyAAD(j.Spec, string(j.KeyType), j.PendingOrderURL)); err != nil {
		return j, fmt.Errorf("open pending key of %s: %w", j.JobKey, err)
	}
	return j, nil
}

// ClaimDue implements certfleet.JobStore in one UPDATE statement: the
// selection of due jobs and their leasing cannot interleave with another
// claim. It walks the jobs_due index in NextAt order and stops after Limit
// matches.
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
	err := s.write(ctx, func(tx *txn) error {
		jobs = jobs[:0]
		rows, err := tx.query(qClaimDue,
			r.Owner, tsReq(now.Add(r.Lease)), tsReq(now), r.Limit)
		if err != nil {
			return translate(err)
		}
		defer rows.Close()
		for rows.Next() {
			j, err := s.scanJob(rows)
			if err != nil {
				return translate(err)
			}
			jobs = append(jobs, j)
		}
		return translate(rows.Err())
	})
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
// an ENOTFOUND or ELEASELOST error otherwise.
func leasedJob(ctx context.Context, tx *txn, key certfleet.JobKey, owner string) (int64, error) {
	if owner == "" {
		return 0, certfleet.Errorf(certfleet.EINVALID, "job %s: lease owner required", key)
	}
	var (
		id    int64
		lease string
	)
	err := tx.queryRow(qLeasedJob,
		key.Spec, string(key.KeyType)).Scan(&id, &lease)
	if errors.Is(err, sql.ErrNoRows) {
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
func (s *Store) fenced(ctx context.Context, key certfleet.JobKey, owner, update string, args ...any) error {
	return s.write(ctx, func(tx *txn) error {
		id, err := leasedJob(ctx, tx, key, owner)
		if err != nil {
			return err
		}
		if _, err := tx.exec(update, append(args, id)...); err != nil {
			return translate(err)
		}
		return nil
	})
}

// fencedAttempt is fenced for a job's attempt that ends without an
// issuance (FailJob, DeferJob): update, then the attempt a, in the same
// transaction.
func (s *Store) fencedAttempt(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, update string, args ...any) error {
	return s.write(ctx, func(tx *txn) error {
		id, err := leasedJob(ctx, tx, key, owner)
		if err != nil {
			return err
		}
		if _, err := tx.exec(update, append(args, id)...); err != nil {
			return fmt.Errorf("update job: %w", translate(err))
		}
		return addAttempt(ctx, tx, id, a)
	})
}

// ExtendLease implements certfleet.JobStore.
func (s *Store) ExtendLease(ctx context.Context, key certfleet.JobKey, owner string, until time.Time) error {
	if err := s.fenced(ctx, key, owner, qExtendLease, tsReq(until)); err != nil {
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
	if err := s.fenced(ctx, key, owner, qSetPendingOrder, orderURL, sealed); err != nil {
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
	err := s.write(ctx, func(tx *txn) error {
		id, err := leasedJob(ctx, tx, key, owner)
		if err != nil {
			return err
		}
		if iss.ID, err = insertIssuance(ctx, tx, iss); err != nil {
			return err
		}
		if _, err := tx.exec(qCompleteJob,
			iss.ID, iss.SpecRevision, tsReq(next.NextAt), tsReq(now),
			ts(next.ARIStart), ts(next.ARIEnd), ts(next.ARIRetryAt), id); err != nil {
			return fmt.Errorf("update job: %w", translate(err))
		}
		return addAttempt(ctx, tx, id, a)
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
	if err := s.fencedAttempt(ctx, key, owner, a, qFailJob, a.Error, tsReq(a.FinishedAt), tsReq(nextAt)); err != nil {
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
	err := s.fenced(ctx, key, owner, qReschedule,
		tsReq(s.now()), tsReq(u.NextAt), ts(u.ARIStart), ts(u.ARIEnd), ts(u.ARIRetryAt))
	if err != nil {
		return fmt.Errorf("reschedule %s: %w", key, err)
	}
	return nil
}

// ReleaseLease implements certfleet.JobStore.
func (s *Store) ReleaseLease(ctx context.Context, key certfleet.JobKey, owner string) error {
	if err := s.fenced(ctx, key, owner, qReleaseLease); err != nil {
		return fmt.Errorf("release lease of %s: %w", key, err)
	}
	return nil
}

// NextDue implements certfleet.JobStore, from the first entry of the
// jobs_due index. Leased jobs count: their NextAt may be in the past.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	_, err := s.reader()
	if err != nil {
		return time.Time{}, false, err
	}
	var at int64
	err = s.rstmt(qNextDue).QueryRowContext(ctx).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, fmt.Errorf("next due job: %w", translate(err))
	}
	return fromTS(sql.NullInt64{Int64: at, Valid: true}), true, nil
}

// Job implements certfleet.JobStore.
func (s *Store) Job(ctx context.Context, key certfleet.JobKey) (certfleet.Job, error) {
	_, err := s.reader()
	if err != nil {
		return certfleet.Job{}, err
	}
	j, err := s.scanJob(s.rstmt(qJob).QueryRowContext(ctx,
		key.Spec, string(key.KeyType)))
	if errors.Is(err, sql.ErrNoRows) {
		return j, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	} else if err != nil {
		return j, fmt.Errorf("load job %s: %w", key, translate(err))
	}
	return j, nil
}

// Jobs implements certfleet.JobStore.
func (s *Store) Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE (?1 = '' OR spec = ?1) AND (?2 OR disabled = 0) AND (NOT ?3 OR lease_owner != '')
		ORDER BY spec, key_type`, f.Spec, f.IncludeDisabled, f.Leased)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.Job
	for rows.Next() {
		j, err := s.scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", translate(err))
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", translate(err))
	}
	return out, nil
}

// RetryNow implements certfleet.JobStore. It leaves a lease in place: the
// holder's outcome still applies, and the job is claimable once it ends.
func (s *Store) RetryNow(ctx context.Context, key certfleet.JobKey) error {
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`UPDATE jobs SET next_at = ? WHERE spec = ? AND key_type = ?`,
			tsReq(s.now()), key.Spec, string(key.KeyType))
		if err != nil {
			return translate(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return translate(err)
		} else if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retry %s: %w", key, err)
	}
	return nil
}

// addAttempt records an attempt of job id and prunes the job's attempts to
// the newest attemptsKept, in the caller's transaction.
func addAttempt(ctx context.Context, tx *txn, id int64, a certfleet.Attempt) error {
	if _, err := tx.exec(qInsertAttempt,
		id, a.Instance, ts(a.StartedAt), ts(a.FinishedAt), a.Outcome, a.OrderURL, a.Error, a.ProblemType); err != nil {
		return fmt.Errorf("record attempt: %w", translate(err))
	}
	if _, err := tx.exec(qPruneAttempts,
		id, attemptsKept-1); err != nil {
		return fmt.Errorf("prune attempts: %w", translate(err))
	}
	return nil
}

// Attempts implements certfleet.JobStore; limit <= 0 means all that are
// kept (the newest 50). An unknown job is ENOTFOUND.
func (s *Store) Attempts(ctx context.Context, key certfleet.JobKey, limit int) ([]certfleet.Attempt, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1
	}
	// One read transaction, so the existence check sees the same snapshot.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE spec = ? AND key_type = ?`, key.Spec, string(key.KeyType)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, certfleet.Errorf(certfleet.ENOTFOUND, "job %s not found", key)
	} else if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, instance, started_at, finished_at, outcome, order_url, error, problem_type
		FROM attempts WHERE job_id = ? ORDER BY id DESC LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
	}
	defer rows.Close()
	var out []certfleet.Attempt
	for rows.Next() {
		a := certfleet.Attempt{JobKey: key}
		var started, finished sql.NullInt64
		if err := rows.Scan(&a.ID, &a.Instance, &started, &finished, &a.Outcome, &a.OrderURL, &a.Error, &a.ProblemType); err != nil {
			return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
		}
		a.StartedAt, a.FinishedAt = fromTS(started), fromTS(finished)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", key, translate(err))
	}
	return out, nil
}
