package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.IncidentStore = (*Store)(nil)

const incidentColumns = `id, incident_key, kind, spec, key_type, subject, severity, summary, serial, not_after,
	failures, last_error, opened_at, updated_at, resolved_at, notified_severity, notified_at, resolution_notified,
	delivery_attempts, delivery_error, claim_owner, claim_until`

// owedSQL is Incident.Pending as SQL: a notification is owed.
const owedSQL = `((resolved_at IS NULL AND severity_rank > notified_rank) OR
	(resolved_at IS NOT NULL AND resolution_notified = 0 AND (notified_rank > 0 OR delivery_attempts > 0)))`

// maxObserveRounds bounds ObserveIncident's retries; each needs another
// writer to have opened the same incident in between, which the single
// writer connection makes impossible, so one round is the norm.
const maxObserveRounds = 3

func scanIncident(row interface{ Scan(...any) error }) (certfleet.Incident, error) {
	var (
		i                                                    certfleet.Incident
		kt, sev, nsev                                        string
		notAfter, opened, updated, resolved, notified, claim sql.NullInt64
		resNotified                                          int
	)
	err := row.Scan(&i.ID, &i.Key, &i.Kind, &i.Certificate, &kt, &i.Subject, &sev, &i.Summary, &i.Serial, &notAfter,
		&i.Failures, &i.LastError, &opened, &updated, &resolved, &nsev, &notified, &resNotified,
		&i.DeliveryAttempts, &i.DeliveryError, &i.ClaimOwner, &claim)
	if err != nil {
		return i, err
	}
	i.KeyType, i.Severity, i.NotifiedSeverity = certfleet.KeyType(kt), certfleet.Severity(sev), certfleet.Severity(nsev)
	i.NotAfter, i.OpenedAt, i.UpdatedAt, i.ResolvedAt = fromTS(notAfter), fromTS(opened), fromTS(updated), fromTS(resolved)
	i.NotifiedAt, i.ClaimUntil, i.ResolutionNotified = fromTS(notified), fromTS(claim), resNotified != 0
	return i, nil
}

// ObserveIncident implements certfleet.IncidentStore.
func (s *Store) ObserveIncident(ctx context.Context, i certfleet.Incident) (certfleet.Incident, bool, error) {
	if err := storeutil.CheckObservation(i); err != nil {
		return certfleet.Incident{}, false, err
	}
	var (
		out     certfleet.Incident
		applied bool
	)
	err := s.write(ctx, func(tx *txn) error {
		for range maxObserveRounds {
			got, err := scanIncident(tx.queryRow(`UPDATE incidents SET severity = ?, severity_rank = ?, summary = ?, serial = ?,
				not_after = ?, failures = ?, last_error = ?, updated_at = ?
				WHERE incident_key = ? AND resolved_at IS NULL AND updated_at <= ? RETURNING `+incidentColumns,
				string(i.Severity), i.Severity.Rank(), i.Summary, i.Serial, ts(i.NotAfter), i.Failures, i.LastError, tsReq(i.UpdatedAt),
				i.Key, tsReq(i.UpdatedAt)))
			if err == nil {
				out, applied = got, true
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("update incident %s: %w", i.Key, translate(err))
			}
			got, err = scanIncident(tx.queryRow(`SELECT `+incidentColumns+` FROM incidents WHERE incident_key = ? AND resolved_at IS NULL`, i.Key))
			if err == nil {
				out = got // observed later by someone else
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("load incident %s: %w", i.Key, translate(err))
			}
			var cleared int
			if err := tx.queryRow(`SELECT EXISTS (SELECT 1 FROM incidents WHERE incident_key = ? AND resolved_at >= ?)`,
				i.Key, tsReq(i.UpdatedAt)).Scan(&cleared); err != nil {
				return fmt.Errorf("load incident %s: %w", i.Key, translate(err))
			}
			if cleared != 0 {
				return nil // a newer observation found it cleared
			}
			got, err = scanIncident(tx.queryRow(`INSERT INTO incidents (incident_key, kind, spec, key_type, subject, severity, severity_rank,
				summary, serial, not_after, failures, last_error, opened_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO NOTHING RETURNING `+incidentColumns,
				i.Key, i.Kind, i.Certificate, string(i.KeyType), i.Subject, string(i.Severity), i.Severity.Rank(),
				i.Summary, i.Serial, ts(i.NotAfter), i.Failures, i.LastError, tsReq(i.UpdatedAt), tsReq(i.UpdatedAt)))
			if err == nil {
				out, applied = got, true
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("open incident %s: %w", i.Key, translate(err))
			}
		}
		return certfleet.Errorf(certfleet.EUNAVAILABLE, "incident %s: opened and closed concurrently %d times; try again", i.Key, maxObserveRounds)
	})
	return out, applied, err
}

// ResolveIncident implements certfleet.IncidentStore. A notification
// claimed and not yet completed or released when the incident resolves
// counts as a delivery attempt: it may have gone out, and if its sender
// died with the claim nothing else would make the resolution owed (nor
// settle the incident).
func (s *Store) ResolveIncident(ctx context.Context, id int64, at time.Time) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`UPDATE incidents SET resolved_at = ?,
				settled = CASE WHEN notified_rank = 0 AND delivery_attempts = 0 AND claim_owner = '' THEN 1 ELSE 0 END,
				delivery_attempts = delivery_attempts + (claim_owner != '')
			WHERE id = ? AND resolved_at IS NULL AND updated_at <= ?`, tsReq(at), id, tsReq(at))
		if err != nil {
			return fmt.Errorf("resolve incident %d: %w", id, translate(err))
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// Incidents implements certfleet.IncidentStore.
func (s *Store) Incidents(ctx context.Context, f certfleet.IncidentFilter) ([]certfleet.Incident, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = storeutil.DefaultIncidentLimit
	}
	q := `SELECT ` + incidentColumns + ` FROM incidents WHERE (? = '' OR spec = ?)`
	if f.OpenOnly {
		q += ` AND resolved_at IS NULL`
	}
	if f.Pending {
		q += ` AND settled = 0 AND ` + owedSQL
	}
	rows, err := db.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, f.Certificate, f.Certificate, limit)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.Incident
	for rows.Next() {
		i, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", translate(err))
		}
		out = append(out, i)
	}
	return out, translate(rows.Err())
}

// ClaimNotification implements certfleet.IncidentStore.
func (s *Store) ClaimNotification(ctx context.Context, id int64, owner string, now, until time.Time) (certfleet.Incident, bool, error) {
	if owner == "" {
		return certfleet.Incident{}, false, certfleet.Errorf(certfleet.EINVALID, "claim incident %d: owner required", id)
	}
	var (
		out certfleet.Incident
		won bool
	)
	err := s.write(ctx, func(tx *txn) error {
		got, err := scanIncident(tx.queryRow(`UPDATE incidents SET claim_owner = ?, claim_until = ?
			WHERE id = ? AND settled = 0 AND (claim_owner = '' OR claim_until <= ?) AND `+owedSQL+` RETURNING `+incidentColumns,
			owner, tsReq(until), id, tsReq(now)))
		switch {
		case err == nil:
			out, won = got, true
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("claim incident %d: %w", id, translate(err))
		}
		return nil
	})
	return out, won, err
}

// CompleteNotification implements certfleet.IncidentStore.
func (s *Store) CompleteNotification(ctx context.Context, id int64, owner, state string, severity certfleet.Severity, at time.Time) error {
	var (
		q    string
		args []any
	)
	switch state {
	case certfleet.NotifyOpened, certfleet.NotifyWorsened:
		q = `UPDATE incidents SET notified_rank = MAX(notified_rank, ?),
				notified_severity = CASE WHEN ? > notified_rank THEN ? ELSE notified_severity END,
				notified_at = ?, delivery_attempts = 0, delivery_error = '', claim_owner = '', claim_until = NULL
			WHERE id = ? AND claim_owner = ?`
		args = []any{severity.Rank(), severity.Rank(), string(severity), tsReq(at), id, owner}
	case certfleet.NotifyResolved:
		q = `UPDATE incidents SET resolution_notified = 1, settled = 1, notified_at = ?, delivery_attempts = 0,
				delivery_error = '', claim_owner = '', claim_until = NULL
			WHERE id = ? AND claim_owner = ? AND resolved_at IS NOT NULL`
		args = []any{tsReq(at), id, owner}
	default:
		return certfleet.Errorf(certfleet.EINVALID, "incident %d: unknown notification state %q", id, state)
	}
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(q, args...)
		if err != nil {
			return fmt.Errorf("record notification of incident %d: %w", id, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "incident %d: the notification claim is no longer %s's", id, owner)
		}
		return nil
	})
}

// ReleaseNotification implements certfleet.IncidentStore.
func (s *Store) ReleaseNotification(ctx context.Context, id int64, owner, deliveryErr string) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`UPDATE incidents SET claim_owner = '', claim_until = NULL,
				delivery_attempts = delivery_attempts + 1, delivery_error = ?
			WHERE id = ? AND claim_owner = ?`, deliveryErr, id, owner)
		if err != nil {
			return fmt.Errorf("release notification claim of incident %d: %w", id, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "incident %d: the notification claim is no longer %s's", id, owner)
		}
		return nil
	})
}
