package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.StatsStore = (*Store)(nil)

// endOfTime bounds a time filter that has none: later than any
// certificate, and within both databases' time range.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	qJobStats = SQL(`SELECT
			count(*) FILTER (WHERE NOT disabled),
			count(*) FILTER (WHERE NOT disabled AND next_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)),
			count(*) FILTER (WHERE lease_owner <> '' AND lease_until > $1),
			count(*) FILTER (WHERE lease_owner <> '' AND (lease_until IS NULL OR lease_until <= $1)),
			count(*) FILTER (WHERE NOT disabled AND failures > 0),
			count(*) FILTER (WHERE NOT disabled AND deploy_error <> '')
		FROM jobs`)
	// qCurrentCertificates walks the jobs' (spec, key_type) index from a
	// key on: a page is an index range, wherever it starts.
	qCurrentCertificates = SQL(`SELECT j.spec, j.key_type, i.id, i.serial, i.fingerprint, i.not_before, i.not_after, i.issued_at,
			j.next_at, j.failures, j.last_error, j.deploy_error, j.deploy_failures, j.deploy_failed_at, j.deploy_next_at
		FROM jobs j JOIN issuances i ON i.id = j.current_id
		WHERE NOT j.disabled AND (j.spec, j.key_type) > ($1, $2) AND ($4 = '' OR j.spec = $4) AND i.not_after < $5
		ORDER BY j.spec, j.key_type LIMIT $3`)
	// qSpecCurrentCertificates is qCurrentCertificates for one spec
	// ($4 set): the spec's rows by the index, where "$4 = '' OR ..."
	// had SQLite walk every job from the page's key on (issue 13: the
	// alert rounds over single certificates).
	qSpecCurrentCertificates = SQL(`SELECT j.spec, j.key_type, i.id, i.serial, i.fingerprint, i.not_before, i.not_after, i.issued_at,
			j.next_at, j.failures, j.last_error, j.deploy_error, j.deploy_failures, j.deploy_failed_at, j.deploy_next_at
		FROM jobs j JOIN issuances i ON i.id = j.current_id
		WHERE j.spec = $4 AND NOT j.disabled AND (j.spec, j.key_type) > ($1, $2) AND i.not_after < $5
		ORDER BY j.spec, j.key_type LIMIT $3`)
	// qExpiringCertificates is qCurrentCertificates with a bound on the
	// not-after and no spec, by expiry (CurrentFilter.ByExpiry): the
	// alert rounds' look at what expires soon. It reads the range of jobs_expiry below the bound (the
	// current certificates' not-after kept on the job, migrations 0036
	// and 0037) and sorts it, instead of walking every job in key order
	// and joining each one's issuance (issue 13). SQLite is told the
	// index: without statistics it walked the key order, which needs no
	// sort; PostgreSQL picks it from its statistics when the range is
	// the small part of the jobs it is meant for.
	qExpiringCertificates = SQLEach(`SELECT j.spec, j.key_type, i.id, i.serial, i.fingerprint, i.not_before, i.not_after, i.issued_at,
			j.next_at, j.failures, j.last_error, j.deploy_error, j.deploy_failures, j.deploy_failed_at, j.deploy_next_at
		FROM jobs j INDEXED BY jobs_expiry JOIN issuances i ON i.id = j.current_id
		WHERE NOT j.disabled AND j.current_not_after < $5 AND (j.spec, j.key_type) > ($1, $2) AND $4 = ''
		ORDER BY j.spec, j.key_type LIMIT $3`,
		`SELECT j.spec, j.key_type, i.id, i.serial, i.fingerprint, i.not_before, i.not_after, i.issued_at,
			j.next_at, j.failures, j.last_error, j.deploy_error, j.deploy_failures, j.deploy_failed_at, j.deploy_next_at
		FROM jobs j JOIN issuances i ON i.id = j.current_id
		WHERE NOT j.disabled AND j.current_not_after < $5 AND (j.spec, j.key_type) > ($1, $2) AND $4 = ''
		ORDER BY j.spec, j.key_type LIMIT $3`)
)

// JobStats implements certfleet.StatsStore in one pass over the jobs table
// (no key is opened, no row is decoded into a Job).
func (s *Store) JobStats(ctx context.Context, now time.Time) (certfleet.JobStats, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.JobStats{}, err
	}
	var st certfleet.JobStats
	err = q.QueryRow(qJobStats, now).Scan(&st.Jobs, &st.Due, &st.LeasesHeld, &st.LeasesExpired, &st.Failing, &st.NotWritten)
	if err != nil {
		return certfleet.JobStats{}, fmt.Errorf("count jobs: %w", err)
	}
	return st, nil
}

// CurrentCertificates implements certfleet.StatsStore: a join of the
// enabled jobs with their current issuances, reading neither chain nor key.
func (s *Store) CurrentCertificates(ctx context.Context, f certfleet.CurrentFilter) ([]certfleet.CurrentCertificate, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	limit := int64(noLimit)
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	notAfter := f.NotAfterBefore
	if notAfter.IsZero() {
		notAfter = endOfTime
	}
	stmt := qCurrentCertificates
	switch {
	case f.Spec != "":
		stmt = qSpecCurrentCertificates
	case f.ByExpiry && !f.NotAfterBefore.IsZero():
		stmt = qExpiringCertificates
	}
	rows, err := q.Query(stmt, f.After.Spec, string(f.After.KeyType), limit, f.Spec, notAfter)
	if err != nil {
		return nil, fmt.Errorf("list current certificates: %w", err)
	}
	defer rows.Close()
	var out []certfleet.CurrentCertificate
	for rows.Next() {
		var (
			c  certfleet.CurrentCertificate
			kt string
		)
		if err := rows.Scan(&c.Spec, &kt, &c.IssuanceID, &c.Serial, &c.Fingerprint, &c.NotBefore, &c.NotAfter, &c.IssuedAt,
			&c.NextAt, &c.Failures, &c.LastError, &c.Deploy.Error, &c.Deploy.Failures, &c.Deploy.FailedAt, &c.Deploy.NextAt); err != nil {
			return nil, fmt.Errorf("list current certificates: %w", err)
		}
		c.KeyType = certfleet.KeyType(kt)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list current certificates: %w", err)
	}
	return out, nil
}
