package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.StatsStore = (*Store)(nil)

// JobStats implements certfleet.StatsStore in one pass over the jobs table
// (no key is opened, no row is decoded into a Job).
func (s *Store) JobStats(ctx context.Context, now time.Time) (certfleet.JobStats, error) {
	db, err := s.reader()
	if err != nil {
		return certfleet.JobStats{}, err
	}
	n := tsReq(now)
	var st certfleet.JobStats
	err = db.QueryRowContext(ctx, `SELECT
			coalesce(sum(disabled = 0), 0),
			coalesce(sum(disabled = 0 AND next_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)), 0),
			coalesce(sum(lease_owner != '' AND lease_until > ?1), 0),
			coalesce(sum(lease_owner != '' AND (lease_until IS NULL OR lease_until <= ?1)), 0),
			coalesce(sum(disabled = 0 AND failures > 0), 0)
		FROM jobs`, n).Scan(&st.Jobs, &st.Due, &st.LeasesHeld, &st.LeasesExpired, &st.Failing)
	if err != nil {
		return certfleet.JobStats{}, fmt.Errorf("count jobs: %w", translate(err))
	}
	return st, nil
}

// CurrentCertificates implements certfleet.StatsStore: a join of the
// enabled jobs with their current issuances, reading neither chain nor key.
func (s *Store) CurrentCertificates(ctx context.Context) ([]certfleet.CurrentCertificate, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT j.spec, j.key_type, i.id, i.serial, i.fingerprint, i.not_before, i.not_after, i.issued_at
		FROM jobs j JOIN issuances i ON i.id = j.current_id
		WHERE j.disabled = 0 ORDER BY j.spec, j.key_type`)
	if err != nil {
		return nil, fmt.Errorf("list current certificates: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.CurrentCertificate
	for rows.Next() {
		var (
			c                certfleet.CurrentCertificate
			kt               string
			nb, na, issuedAt sql.NullInt64
		)
		if err := rows.Scan(&c.Spec, &kt, &c.IssuanceID, &c.Serial, &c.Fingerprint, &nb, &na, &issuedAt); err != nil {
			return nil, fmt.Errorf("list current certificates: %w", translate(err))
		}
		c.KeyType = certfleet.KeyType(kt)
		c.NotBefore, c.NotAfter, c.IssuedAt = fromTS(nb), fromTS(na), fromTS(issuedAt)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list current certificates: %w", translate(err))
	}
	return out, nil
}
