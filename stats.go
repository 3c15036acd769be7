package certfleet

import (
	"context"
	"time"
)

// JobStats counts renewal jobs by state at one moment: the queue and the
// leases, as a metrics scrape shows them.
type JobStats struct {
	// Jobs counts enabled jobs.
	Jobs int
	// Due counts enabled jobs whose NextAt has come and that no live
	// lease holds: the work waiting for a scheduler (the queue depth).
	Due int
	// LeasesHeld counts jobs leased until after now (work in flight).
	LeasesHeld int
	// LeasesExpired counts jobs whose lease owner is set but whose lease
	// ended before now: an instance that died or stalled holding them.
	LeasesExpired int
	// Failing counts enabled jobs whose last attempt failed (Failures > 0).
	Failing int
}

// CurrentCertificate is the validity of one job's current issuance, without
// its chain or key.
type CurrentCertificate struct {
	Spec        string
	KeyType     KeyType
	IssuanceID  int64
	Serial      string
	Fingerprint string
	NotBefore   time.Time
	NotAfter    time.Time
	IssuedAt    time.Time
}

// Lifetime is NotAfter - NotBefore.
func (c CurrentCertificate) Lifetime() time.Duration { return c.NotAfter.Sub(c.NotBefore) }

// StatsStore answers what a metrics scrape asks, each in one query that reads
// no chain and no key, so a scrape stays cheap with 100,000 certificates.
// Safe for concurrent use.
type StatsStore interface {
	// JobStats counts the jobs by state as of now.
	JobStats(ctx context.Context, now time.Time) (JobStats, error)
	// CurrentCertificates lists the current issuance of every enabled job
	// that has one, ordered by spec name and key type.
	CurrentCertificates(ctx context.Context) ([]CurrentCertificate, error)
}
