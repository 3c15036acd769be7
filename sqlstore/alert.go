package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.IncidentStore = (*Store)(nil)

const incidentColumns = `id, incident_key, kind, spec, key_type, subject, severity, summary, serial, not_after,
	failures, last_error, opened_at, updated_at, resolved_at, notified_severity, notified_at, resolution_notified,
	delivery_attempts, delivery_error, claim_owner, claim_until`

// owedSQL is Incident.Pending as SQL: a notification is owed.
const owedSQL = `((resolved_at IS NULL AND severity_rank > notified_rank) OR
	(resolved_at IS NOT NULL AND resolution_notified = false AND (notified_rank > 0 OR delivery_attempts > 0)))`

// unsettled returns the statement before + "incident not settled" + after,
// in each dialect's form of the predicate of the partial index
// incidents_unsettled: SQLite uses a partial index only for a query that
// repeats its WHERE term as written (settled = 0); PostgreSQL's is NOT
// settled.
func unsettled(before, after string) Q {
	return SQLEach(before+`settled = 0`+after, before+`NOT settled`+after)
}

var (
	qObserveUpdate = SQL(`UPDATE incidents SET severity = $1, severity_rank = $2, summary = $3, serial = $4,
			not_after = $5, failures = $6, last_error = $7, updated_at = $8
		WHERE incident_key = $9 AND resolved_at IS NULL AND updated_at <= $8 RETURNING ` + incidentColumns)
	qOpenIncident    = SQL(`SELECT ` + incidentColumns + ` FROM incidents WHERE incident_key = $1 AND resolved_at IS NULL`)
	qClearedIncident = SQL(`SELECT EXISTS (SELECT 1 FROM incidents WHERE incident_key = $1 AND resolved_at >= $2)`)
	qObserveInsert   = SQL(`INSERT INTO incidents (incident_key, kind, spec, key_type, subject, severity, severity_rank,
			summary, serial, not_after, failures, last_error, opened_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
		ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO NOTHING RETURNING ` + incidentColumns)
	// qResolveIncident: settled takes a comparison's value, which is a
	// boolean in PostgreSQL and 0 or 1 in SQLite, as each stores it.
	qResolveIncident = SQL(`UPDATE incidents SET resolved_at = $1,
			settled = (notified_rank = 0 AND delivery_attempts = 0 AND claim_owner = ''),
			delivery_attempts = delivery_attempts + CASE WHEN claim_owner <> '' THEN 1 ELSE 0 END
		WHERE id = $2 AND resolved_at IS NULL AND updated_at <= $1`)
	qClaimNotification = unsettled(`UPDATE incidents SET claim_owner = $1, claim_until = $2
		WHERE id = $3 AND `, ` AND (claim_owner = '' OR claim_until <= $4) AND `+owedSQL+` RETURNING `+incidentColumns)
	qNotifiedOpen = SQL(`UPDATE incidents SET notified_rank = CASE WHEN $1 > notified_rank THEN $1 ELSE notified_rank END,
			notified_severity = CASE WHEN $1 > notified_rank THEN $2 ELSE notified_severity END,
			notified_at = $3, delivery_attempts = 0, delivery_error = '', claim_owner = '', claim_until = NULL
		WHERE id = $4 AND claim_owner = $5`)
	qNotifiedResolved = SQL(`UPDATE incidents SET resolution_notified = true, settled = true, notified_at = $1, delivery_attempts = 0,
			delivery_error = '', claim_owner = '', claim_until = NULL
		WHERE id = $2 AND claim_owner = $3 AND resolved_at IS NOT NULL`)
	qReleaseNotification = SQL(`UPDATE incidents SET claim_owner = '', claim_until = NULL,
			delivery_attempts = delivery_attempts + 1, delivery_error = $1
		WHERE id = $2 AND claim_owner = $3`)
)

// maxObserveRounds bounds ObserveIncident's retries: a round is repeated
// only when another writer opened the same incident, with an older
// observation, after the round's update looked for it (the next round
// updates that row). On SQLite, whose writers are serialised, one round is
// the norm.
const maxObserveRounds = 3

func scanIncident(row Row) (certfleet.Incident, error) {
	var (
		i             certfleet.Incident
		kt, sev, nsev string
	)
	err := row.Scan(&i.ID, &i.Key, &i.Kind, &i.Certificate, &kt, &i.Subject, &sev, &i.Summary, &i.Serial, &i.NotAfter,
		&i.Failures, &i.LastError, &i.OpenedAt, &i.UpdatedAt, &i.ResolvedAt, &nsev, &i.NotifiedAt, &i.ResolutionNotified,
		&i.DeliveryAttempts, &i.DeliveryError, &i.ClaimOwner, &i.ClaimUntil)
	if err != nil {
		return certfleet.Incident{}, err
	}
	i.KeyType, i.Severity, i.NotifiedSeverity = certfleet.KeyType(kt), certfleet.Severity(sev), certfleet.Severity(nsev)
	return i, nil
}

// ObserveIncident implements certfleet.IncidentStore.
func (s *Store) ObserveIncident(ctx context.Context, i certfleet.Incident) (certfleet.Incident, bool, error) {
	if err := checkObservation(i); err != nil {
		return certfleet.Incident{}, false, err
	}
	var (
		out     certfleet.Incident
		applied bool
	)
	err := s.write(ctx, func(tx Tx) error {
		out, applied = certfleet.Incident{}, false
		for range maxObserveRounds {
			got, err := scanIncident(tx.QueryRow(qObserveUpdate,
				string(i.Severity), i.Severity.Rank(), i.Summary, i.Serial, NullTime(i.NotAfter), i.Failures, i.LastError, i.UpdatedAt, i.Key))
			if err == nil {
				out, applied = got, true
				return nil
			} else if !noRows(err) {
				return fmt.Errorf("update incident %s: %w", i.Key, err)
			}
			got, err = scanIncident(tx.QueryRow(qOpenIncident, i.Key))
			if err == nil {
				if got.UpdatedAt.After(Stored(i.UpdatedAt)) {
					out = got // observed later by someone else
					return nil
				}
				// Opened by another writer (PostgreSQL: committed after
				// the update looked, each statement seeing the newest
				// commits) with an older observation: update it.
				continue
			} else if !noRows(err) {
				return fmt.Errorf("load incident %s: %w", i.Key, err)
			}
			var cleared bool
			if err := tx.QueryRow(qClearedIncident, i.Key, i.UpdatedAt).Scan(&cleared); err != nil {
				return fmt.Errorf("load incident %s: %w", i.Key, err)
			}
			if cleared {
				return nil // a newer observation found it cleared
			}
			got, err = scanIncident(tx.QueryRow(qObserveInsert,
				i.Key, i.Kind, i.Certificate, string(i.KeyType), i.Subject, string(i.Severity), i.Severity.Rank(),
				i.Summary, i.Serial, NullTime(i.NotAfter), i.Failures, i.LastError, i.UpdatedAt))
			if err == nil {
				out, applied = got, true
				return nil
			} else if !noRows(err) {
				return fmt.Errorf("open incident %s: %w", i.Key, err)
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
	err := s.write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.Exec(qResolveIncident, at, id)
		if err != nil {
			return fmt.Errorf("resolve incident %d: %w", id, err)
		}
		return nil
	})
	return n == 1, err
}

// Incidents implements certfleet.IncidentStore.
func (s *Store) Incidents(ctx context.Context, f certfleet.IncidentFilter) ([]certfleet.Incident, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultIncidentLimit
	}
	before, after := `SELECT `+incidentColumns+` FROM incidents WHERE ($1 = '' OR spec = $1)`, ""
	if f.OpenOnly {
		before += ` AND resolved_at IS NULL`
	}
	if f.Pending {
		before, after = before+` AND `, ` AND `+owedSQL
	}
	after += ` ORDER BY id DESC LIMIT $2`
	stmt := SQL(before + after)
	if f.Pending {
		stmt = unsettled(before, after)
	}
	rows, err := q.Query(stmt, f.Certificate, limit)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Incident
	for rows.Next() {
		i, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return out, nil
}

// ClaimNotification implements certfleet.IncidentStore: one conditional
// UPDATE, so of several instances claiming at once exactly one wins.
func (s *Store) ClaimNotification(ctx context.Context, id int64, owner string, now, until time.Time) (certfleet.Incident, bool, error) {
	if owner == "" {
		return certfleet.Incident{}, false, certfleet.Errorf(certfleet.EINVALID, "claim incident %d: owner required", id)
	}
	var (
		out certfleet.Incident
		won bool
	)
	err := s.write(ctx, func(tx Tx) error {
		out, won = certfleet.Incident{}, false
		got, err := scanIncident(tx.QueryRow(qClaimNotification, owner, until, id, now))
		switch {
		case err == nil:
			out, won = got, true
		case !noRows(err):
			return fmt.Errorf("claim incident %d: %w", id, err)
		}
		return nil
	})
	return out, won, err
}

// CompleteNotification implements certfleet.IncidentStore.
func (s *Store) CompleteNotification(ctx context.Context, id int64, owner, state string, severity certfleet.Severity, at time.Time) error {
	var (
		q    Q
		args []any
	)
	switch state {
	case certfleet.NotifyOpened, certfleet.NotifyWorsened:
		q, args = qNotifiedOpen, []any{severity.Rank(), string(severity), at, id, owner}
	case certfleet.NotifyResolved:
		q, args = qNotifiedResolved, []any{at, id, owner}
	default:
		return certfleet.Errorf(certfleet.EINVALID, "incident %d: unknown notification state %q", id, state)
	}
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(q, args...)
		if err != nil {
			return fmt.Errorf("record notification of incident %d: %w", id, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "incident %d: the notification claim is no longer %s's", id, owner)
		}
		return nil
	})
}

// ReleaseNotification implements certfleet.IncidentStore.
func (s *Store) ReleaseNotification(ctx context.Context, id int64, owner, deliveryErr string) error {
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(qReleaseNotification, deliveryErr, id, owner)
		if err != nil {
			return fmt.Errorf("release notification claim of incident %d: %w", id, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ELEASELOST, "incident %d: the notification claim is no longer %s's", id, owner)
		}
		return nil
	})
}

// checkObservation is the validation of certfleet.IncidentStore.ObserveIncident.
func checkObservation(i certfleet.Incident) error {
	switch {
	case i.Key == "" || i.Kind == "" || i.Certificate == "":
		return certfleet.Errorf(certfleet.EINVALID, "incident: key, kind and certificate required")
	case i.Severity.Rank() == 0:
		return certfleet.Errorf(certfleet.EINVALID, "incident %s: unknown severity %q", i.Key, i.Severity)
	case i.UpdatedAt.IsZero():
		return certfleet.Errorf(certfleet.EINVALID, "incident %s: observation time required", i.Key)
	}
	return nil
}

// defaultIncidentLimit is how many incidents Incidents lists when the
// filter sets no limit.
const defaultIncidentLimit = 100
