package manager

// RunOnce, one pass over the due jobs, and the Report it returns.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Result is what happened to one job in a pass.
type Result struct {
	Key      certfleet.JobKey
	Outcome  string // certfleet.OutcomeIssued, OutcomeFailed or OutcomeDeferred
	Issuance *certfleet.Issuance
	// Err is the failure (Outcome failed), a deploy error after a
	// successful issuance, or the *certfleet.DeferError of work a
	// rate-limit budget deferred (Outcome deferred).
	Err error
	// NextAt is when the job is due again.
	NextAt   time.Time
	Duration time.Duration
}

// Report summarises a RunOnce pass.
type Report struct {
	Results                  []Result
	Issued, Failed, Deferred int
	DeployFailed             int
	Started, Finished        time.Time
	// Outstanding lists the jobs in trouble after the pass, tried in it
	// or not (a failing job waiting for its backoff, files not written):
	// RunOnce leaves it empty, its caller (daemon.IssueOnce) fills it
	// from the store, so that a one-shot pass keeps failing while they
	// are (cron sees a failure on every pass, not only the first).
	Outstanding []certfleet.Job
	// Problems holds the ACME problem type of the newest failed attempt
	// of the Outstanding jobs that have one (filled with them).
	Problems map[certfleet.JobKey]string
	// Waiting lists the names held back by their self-tests after the
	// pass (filled like Outstanding, from the store): no order was
	// placed for them, and a one-shot pass fails while any waits, so
	// that cron sees a name that cannot be issued (issue 14).
	Waiting []certfleet.WaitingName
}

// OK reports whether nothing failed, in the pass or still outstanding, and
// no name waits for its self-test.
func (r Report) OK() bool {
	return r.Failed == 0 && r.DeployFailed == 0 && len(r.Outstanding) == 0 && len(r.Waiting) == 0
}

// RunOnce works on every job that is due now, with bounded concurrency, and
// returns when they are all done: one pass for cron users and the demo. Jobs
// that fail are rescheduled with backoff and not retried within the pass.
// A pass does not wait for PackDelay: what is requested when it runs is
// what it orders.
func (m *Manager) RunOnce(ctx context.Context) (Report, error) {
	m.init()
	rep := Report{Started: m.Now()}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		running int
		done    = make(chan struct{}, m.Concurrency)
		total   int
		seen    = make(map[certfleet.JobKey]bool)
	)
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	for {
		free := m.Concurrency - running
		var claimed []certfleet.Job
		if free > 0 {
			var err error
			claimed, err = m.Store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: m.Instance, Now: m.Now(), Lease: m.Lease, Limit: free})
			if err != nil {
				wg.Wait()
				return rep, fmt.Errorf("claim due jobs: %w", err)
			}
		}
		for _, job := range claimed {
			if seen[job.JobKey] {
				// Due again within the pass (e.g. a lifetime shorter
				// than the pass): leave it to the next pass rather
				// than loop on it.
				_ = m.Store.ReleaseLease(ctx, job.JobKey, m.Instance)
				continue
			}
			seen[job.JobKey] = true
			running++
			total++
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := m.process(ctx, job, inPass)
				mu.Lock()
				rep.add(res)
				mu.Unlock()
				done <- struct{}{}
			}()
		}
		if running == 0 {
			break // nothing due that this pass has not worked on
		}
		select {
		case <-done:
			running--
		case <-progress.C:
			mu.Lock()
			m.Logger.Info("issuance batch in progress", "done", len(rep.Results), "claimed", total,
				"issued", rep.Issued, "failed", rep.Failed, "running", running)
			mu.Unlock()
		case <-ctx.Done():
			wg.Wait()
			return rep, ctx.Err()
		}
	}
	wg.Wait()
	rep.Finished = m.Now()
	return rep, nil
}

func (r *Report) add(res Result) {
	r.Results = append(r.Results, res)
	switch res.Outcome {
	case certfleet.OutcomeIssued:
		r.Issued++
		if res.Err != nil {
			r.DeployFailed++
		}
	case certfleet.OutcomeFailed:
		r.Failed++
	case certfleet.OutcomeDeferred:
		r.Deferred++
	}
}
