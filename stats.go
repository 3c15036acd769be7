package certfleet

import (
	"context"
	"maps"
	"slices"
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
	// NotWritten counts enabled jobs whose current issuance could not be
	// written to its outputs (Deploy.Error set).
	NotWritten int
}

// CurrentCertificate is the validity of one job's current issuance, without
// its chain or key, and the job's schedule.
type CurrentCertificate struct {
	Spec        string
	KeyType     KeyType
	IssuanceID  int64
	Serial      string
	Fingerprint string
	NotBefore   time.Time
	NotAfter    time.Time
	IssuedAt    time.Time
	// NextAt, Failures and LastError are the job's (Job's fields of the
	// same names).
	NextAt    time.Time
	Failures  int
	LastError string
	// Deploy is the job's (Job.Deploy): whether this issuance is written.
	Deploy DeployState
}

// CurrentFilter selects and pages CurrentCertificates in (spec, key type)
// order, so that a caller going through every certificate holds one page at
// a time. Zero fields select everything.
type CurrentFilter struct {
	// Spec selects one spec's certificates.
	Spec string
	// NotAfterBefore selects the certificates that expire before it.
	NotAfterBefore time.Time
	// ByExpiry, with NotAfterBefore and without Spec, reads the
	// certificates through an index of their not-after: the range below
	// NotAfterBefore only, sorted into pages. For a bound few are below
	// (the alert rounds' look at what expires soon, issue 13); for one
	// most are below, every page sorts them all, and the key order
	// (ByExpiry false) is cheaper.
	ByExpiry bool
	// After is the last key of the previous page; zero starts at the
	// beginning.
	After JobKey
	// Limit is the most to return; 0 returns all.
	Limit int
}

// EachCurrentCertificate calls fn with every current certificate of s that
// f selects, page by page (f.Limit at a time; 1,000 when not positive,
// from f.After on), and stops at the first error fn or s returns.
func EachCurrentCertificate(ctx context.Context, s StatsStore, f CurrentFilter, fn func(CurrentCertificate) error) error {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	pageSize := f.Limit
	for {
		page, err := s.CurrentCertificates(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		last := page[len(page)-1]
		f.After = JobKey{Spec: last.Spec, KeyType: last.KeyType}
	}
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
	// that has one, ordered by spec name and key type, the page f selects
	// (an index range: a page costs the same anywhere in 100,000).
	CurrentCertificates(ctx context.Context, f CurrentFilter) ([]CurrentCertificate, error)
}

// fewSpecs is how many specs CurrentCertificatesOf looks up one by one;
// for more it reads every page instead.
const fewSpecs = 100

// CurrentCertificatesOf returns the current certificates of the lineages in
// keys, in (spec, key type) order: a lookup per spec when they are few, a
// pass over every page otherwise. Either way it holds only those it returns
// and a page.
func CurrentCertificatesOf(ctx context.Context, s StatsStore, keys map[JobKey]bool) ([]CurrentCertificate, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	specs := map[string]bool{}
	for k := range keys {
		specs[k.Spec] = true
	}
	var out []CurrentCertificate
	keep := func(c CurrentCertificate) error {
		if keys[JobKey{Spec: c.Spec, KeyType: c.KeyType}] {
			out = append(out, c)
		}
		return nil
	}
	if len(specs) > fewSpecs {
		return out, EachCurrentCertificate(ctx, s, CurrentFilter{}, keep)
	}
	names := slices.Sorted(maps.Keys(specs))
	for _, name := range names {
		if err := EachCurrentCertificate(ctx, s, CurrentFilter{Spec: name}, keep); err != nil {
			return nil, err
		}
	}
	return out, nil
}
