package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

var _ certfleet.IncidentStore = (*Store)(nil)

const incidentColumns = `id, incident_key, kind, spec, key_type, subject, severity, summary, serial, not_after,
	failures, last_error, opened_at, updated_at, resolved_at, notified_severity, notified_at, resolution_notified,
	delivery_attempts, delivery_error, claim_owner, claim_until`

// owedSQL is Incident.Pending as SQL: a notification is owed.
const owedSQL = `((resolved_at IS NULL AND severity_rank > notified_rank) OR
	(resolved_at IS NOT NULL AND NOT resolution_notified AND (notified_rank > 0 OR delivery_attempts > 0)))`

// maxObserveRounds bounds ObserveIncident's retries: a round is repeated
// only when another instance opened the same incident between its look
// and its insert (the insert then does nothing and the next round updates
// that instance's row).
const maxObserveRounds = 3

func scanIncident(row pgx.Row) (certfleet.Incident, error) {
	var (
		i                                                    certfleet.Incident
		kt, sev, nsev                                        string
		notAfter, opened, updated, resolved, notified, claim pgtype.Timestamptz
	)
	err := row.Scan(&i.ID, &i.Key, &i.Kind, &i.Certificate, &kt, &i.Subject, &sev, &i.Summary, &i.Serial, &notAfter,
		&i.Failures, &i.LastError, &opened, &updated, &resolved, &nsev, &notified, &i.ResolutionNotified,
		&i.DeliveryAttempts, &i.DeliveryError, &i.ClaimOwner, &claim)
	if err != nil {
		return i, err
	}
	i.KeyType, i.Severity, i.NotifiedSeverity = certfleet.KeyType(kt), certfleet.Severity(sev), certfleet.Severity(nsev)
	i.NotAfter, i.OpenedAt, i.UpdatedAt, i.ResolvedAt = fromTS(notAfter), fromTS(opened), fromTS(updated), fromTS(resolved)
	i.NotifiedAt, i.ClaimUntil = fromTS(notified), fromTS(claim)
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		out, applied = certfleet.Incident{}, false
		for range maxObserveRounds {
			got, err := scanIncident(tx.QueryRow(ctx, `UPDATE incidents SET severity = $1, severity_rank = $2, summary = $3, serial = $4,
				not_after = $5, failures = $6, last_error = $7, updated_at = $8
				WHERE incident_key = $9 AND resolved_at IS NULL AND updated_at <= $8 RETURNING `+incidentColumns,
				string(i.Severity), i.Severity.Rank(), i.Summary, i.Serial, ts(i.NotAfter), i.Failures, i.LastError, i.UpdatedAt, i.Key))
			if err == nil {
				out, applied = got, true
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("update incident %s: %w", i.Key, translate(err))
			}
			got, err = scanIncident(tx.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE incident_key = $1 AND resolved_at IS NULL`, i.Key))
			if err == nil {
				out = got // observed later by someone else
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("load incident %s: %w", i.Key, translate(err))
			}
			var cleared bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM incidents WHERE incident_key = $1 AND resolved_at >= $2)`,
				i.Key, i.UpdatedAt).Scan(&cleared); err != nil {
				return fmt.Errorf("load incident %s: %w", i.Key, translate(err))
			}
			if cleared {
				return nil // a newer observation found it cleared
			}
			got, err = scanIncident(tx.QueryRow(ctx, `INSERT INTO incidents (incident_key, kind, spec, key_type, subject, severity, severity_rank,
				summary, serial, not_after, failures, last_error, opened_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
				ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO NOTHING RETURNING `+incidentColumns,
				i.Key, i.Kind, i.Certificate, string(i.KeyType), i.Subject, string(i.Severity), i.Severity.Rank(),
				i.Summary, i.Serial, ts(i.NotAfter), i.Failures, i.LastError, i.UpdatedAt))
			if err == nil {
				out, applied = got, true
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE incidents SET resolved_at = $1,
				settled = (notified_rank = 0 AND delivery_attempts = 0 AND claim_owner = ''),
				delivery_attempts = delivery_attempts + (claim_owner <> '')::int
			WHERE id = $2 AND resolved_at IS NULL AND updated_at <= $1`, at, id)
		if err != nil {
			return fmt.Errorf("resolve incident %d: %w", id, translate(err))
		}
		n = tag.RowsAffected()
		return nil
	})
	return n == 1, err
}

// Incidents implements certfleet.IncidentStore.
func (s *Store) Incidents(ctx context.Context, f certfleet.IncidentFilter) ([]certfleet.Incident, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	limit := f.Limit
	if limit <= 0 {
		limit = storeutil.DefaultIncidentLimit
	}
	q := `SELECT ` + incidentColumns + ` FROM incidents WHERE ($1 = '' OR spec = $1)`
	if f.OpenOnly {
		q += ` AND resolved_at IS NULL`
	}
	if f.Pending {
		q += ` AND NOT settled AND ` + owedSQL
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY id DESC LIMIT $2`, f.Certificate, limit)
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		out, won = certfleet.Incident{}, false
		got, err := scanIncident(tx.QueryRow(ctx, `UPDATE incidents SET claim_owner = $1, claim_until = $2
			WHERE id = $3 AND NOT settled AND (claim_owner = '' OR claim_until <= $4) AND `+owedSQL+` RETURNING `+incidentColumns,
			owner, until, id, now))
		switch {
		case err == nil:
			out, won = got, true
		case !errors.Is(err, pgx.ErrNoRows):
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
		q = `UPDATE incidents SET notified_rank = GREATEST(notified_rank, $1),
				notified_severity = CASE WHEN $1 > notified_rank THEN $2 ELSE notified_severity END,
				notified_at = $3, delivery_attempts = 0, delivery_error = '', claim_owner = '', claim_until = NULL
			WHERE id = $4 AND claim_owner = $5`
		args = []any{severity.Rank(), string(severity), at, id, owner}
	case certfleet.NotifyResolved:
		q = `UPDATE incidents SET resolution_notified = true, settled = true, notified_at = $1, delivery_attempts = 0,
				delivery_error = '', claim_owner = '', claim_until = NULL
			WHERE id = $2 AND claim_owner = $3 AND resolved_at IS NOT NULL`
		args = []any{at, id, owner}
	default:
		return certfleet.Errorf(certfleet.EINVALID, "incident %d: unknown notification state %q", id, state)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("record notification of incident %d: %w", id, translate(err))
		}
		if tag.RowsAffected() == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "incident %d: the notification claim is no longer %s's", id, owner)
		}
		return nil
	})
}

// ReleaseNotification implements certfleet.IncidentStore.
func (s *Store) ReleaseNotification(ctx context.Context, id int64, owner, deliveryErr string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE incidents SET claim_owner = '', claim_until = NULL,
				delivery_attempts = delivery_attempts + 1, delivery_error = $1
			WHERE id = $2 AND claim_owner = $3`, deliveryErr, id, owner)
		if err != nil {
			return fmt.Errorf("release notification claim of incident %d: %w", id, translate(err))
		}
		if tag.RowsAffected() == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "incident %d: the notification claim is no longer %s's", id, owner)
		}
		return nil
	})
}
