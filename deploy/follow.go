package deploy

// Follower: every instance keeps its own server-side outputs current,
// whichever instance issued the certificate (issue 16: with three instances
// each wrote only what it had issued, and the others caught up at their
// next restart).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Timing of Follower, with reasons.
const (
	// DefaultFollowInterval is how often a Follower looks at the store
	// without a notification: a store shared without notifications (a
	// one-shot `certfleet issue` beside serve on SQLite) or one lost
	// while the store reconnects.
	DefaultFollowInterval = 30 * time.Second
	// followGap is the least time between two passes: a wave of
	// issuances elsewhere costs one list of the jobs per gap, not one
	// per certificate.
	followGap = 500 * time.Millisecond
	// followRetry is the wait after a pass that failed to write some
	// certificates (a full disk, a missing owner): soon, but not a loop.
	followRetry = 2 * time.Second
)

// FollowStore is what a Follower reads: the current certificates (one
// certificate's, or a page of all) and the archive.
type FollowStore interface {
	CurrentCertificates(ctx context.Context, f certfleet.CurrentFilter) ([]certfleet.CurrentCertificate, error)
	Issuance(ctx context.Context, id int64) (certfleet.Issuance, error)
}

// Reads of a pass, with reasons.
const (
	// maxNamedFollow bounds the certificates a pass looks up one by one
	// (Follower.Certificates); with more, it reads pages of every
	// current certificate instead, which costs less than a lookup each.
	maxNamedFollow = 1000
	// followPage is how many current certificates a pass holds at once:
	// a pass over 100,000 certificates holds a page, not every job
	// (issue 13: serve's memory rose with each pass).
	followPage = 1000
)

// Follower writes, on this instance, every current certificate it has not
// written yet: it wakes when the store announces a change
// (certfleet.Notifier: another instance issued) and at an interval, lists
// the jobs and deploys those whose current issuance differs from the one it
// last wrote. It is safe for concurrent use; set the fields before Run or
// Pass.
type Follower struct {
	Store FollowStore
	// Wants reports whether this instance writes server-side outputs
	// (output_dir, copies) for the certificate named spec.
	Wants func(spec string) bool
	// Certificates, if set, lists the certificates Wants names: a pass
	// then looks up those alone, by the index, instead of reading every
	// current certificate (issue 13: 100,000 names declared over the API,
	// none with outputs here, were read at every pass, and on PostgreSQL
	// every PUT's notification brought a pass).
	Certificates func() []string
	// Deploy writes iss (the job's current issuance) to the outputs of
	// its certificate; it is idempotent (files already current are left
	// alone).
	Deploy func(ctx context.Context, iss certfleet.Issuance) error
	// Interval is how often the store is looked at without a
	// notification. Default DefaultFollowInterval.
	Interval time.Duration
	// Logger receives a line per pass that wrote certificates issued
	// elsewhere, and failures (when they start). Nil discards.
	Logger *slog.Logger

	mu      sync.Mutex                 // guards written
	written map[certfleet.JobKey]int64 // the issuance last written, by job
}

// Written records that iss was deployed here (by the scheduler that issued
// it, or a pass), so the next pass skips it.
func (f *Follower) Written(iss certfleet.Issuance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.written == nil {
		f.written = make(map[certfleet.JobKey]int64)
	}
	f.written[certfleet.JobKey{Spec: iss.Spec, KeyType: iss.KeyType}] = iss.ID
}

func (f *Follower) isWritten(key certfleet.JobKey, id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written[key] == id
}

// Pass deploys every job's current issuance that Wants names and that this
// Follower has not written (all: every one, whether written or not, as at
// start or after a reload, when the outputs themselves may have changed).
// It returns how many it deployed and the first error; a failed one is
// tried again at the next pass.
func (f *Follower) Pass(ctx context.Context, all bool) (int, error) {
	var (
		n    int
		errs []error
	)
	visit := func(c certfleet.CurrentCertificate) {
		key := certfleet.JobKey{Spec: c.Spec, KeyType: c.KeyType}
		if c.IssuanceID == 0 || (f.Wants != nil && !f.Wants(c.Spec)) || (!all && f.isWritten(key, c.IssuanceID)) {
			return
		}
		iss, err := f.Store.Issuance(ctx, c.IssuanceID)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate %s (%s): load issuance %d: %w", c.Spec, c.KeyType, c.IssuanceID, err))
			return
		}
		if err := f.Deploy(ctx, iss); err != nil {
			errs = append(errs, err)
			return
		}
		f.Written(iss)
		n++
	}
	var names []string
	if f.Certificates != nil {
		names = f.Certificates()
	}
	if f.Certificates != nil && len(names) <= maxNamedFollow {
		for _, name := range names {
			page, err := f.Store.CurrentCertificates(ctx, certfleet.CurrentFilter{Spec: name})
			if err != nil {
				return n, fmt.Errorf("current certificates of %s: %w", name, err)
			}
			for _, c := range page {
				visit(c)
			}
		}
	} else {
		cf := certfleet.CurrentFilter{Limit: followPage}
		for {
			page, err := f.Store.CurrentCertificates(ctx, cf)
			if err != nil {
				return n, fmt.Errorf("list certificates to write: %w", err)
			}
			for _, c := range page {
				visit(c)
			}
			if len(page) < followPage {
				break
			}
			last := page[len(page)-1]
			cf.After = certfleet.JobKey{Spec: last.Spec, KeyType: last.KeyType}
		}
	}
	if len(errs) > 0 {
		return n, errors.Join(errs...)
	}
	return n, nil
}

// Run makes passes until ctx ends: when the store announces a change
// (certfleet.Notifier), and at least every Interval. Failures are logged
// and retried at the next pass.
func (f *Follower) Run(ctx context.Context) {
	log := f.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	interval := f.Interval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	var changes <-chan struct{}
	if n, ok := f.Store.(certfleet.Notifier); ok {
		changes = n.Changes(ctx)
	}
	timer := time.NewTimer(interval)
	defer timer.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
		case <-timer.C:
		}
		n, err := f.Pass(ctx, false)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				log.Error("cannot write some certificates issued by other instances; retrying", certfleet.LogError, err, "written", n)
			}
			failing = true
		default:
			if n > 0 || failing {
				log.Info("certificate files brought up to date", "written", n)
			}
			failing = false
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		wait := interval
		if failing {
			wait = min(interval, followRetry)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(followGap):
		}
	}
}
