package manager

// Run, the daemon's scheduler loop.

import (
	"context"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Run is the daemon loop: it works on due jobs as they come due, at most
// Concurrency at once, until ctx ends. Then it waits for running jobs to stop
// (they release their leases; orders in flight are resumed on restart) and
// returns nil. Store errors are logged and retried, never fatal. It looks at
// the store when a job finishes, on Wake, when a store that is a
// certfleet.Notifier reports a change, and at least every PollInterval.
func (m *Manager) Run(ctx context.Context) error {
	m.init()
	var (
		wg      sync.WaitGroup
		running int
		done    = make(chan struct{}, m.Concurrency)
	)
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	// A store shared by instances may say when another one changed the
	// work (certfleet.Notifier); polling stays the fallback. A nil channel
	// never receives.
	var changes <-chan struct{}
	if n, ok := m.Store.(certfleet.Notifier); ok {
		changes = n.Changes(ctx)
	}
	storeFailures := 0
	hb := m.heartbeat()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			running--
		case <-m.wake:
		case _, ok := <-changes:
			if !ok {
				changes = nil // the store closed it: poll only
			}
		case <-timer.C:
		}
		// Drain finished jobs so the count of free slots is current.
		for drained := false; !drained; {
			select {
			case <-done:
				running--
			default:
				drained = true
			}
		}
		sleep := m.PollInterval
		if free := m.Concurrency - running; free > 0 {
			jobs, err := m.Store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: m.Instance, Now: m.Now(), Lease: m.Lease, Limit: free})
			hb.beat(ctx, err)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				storeFailures++
				sleep = m.storeRetry(storeFailures)
				m.Logger.Error("cannot read due work from the store; retrying", certfleet.LogError, err, "retry_in", sleep)
			} else {
				storeFailures = 0
				for _, job := range jobs {
					running++
					wg.Add(1)
					go func() {
						defer wg.Done()
						m.process(ctx, job, inDaemon)
						done <- struct{}{}
					}()
				}
				if len(jobs) == free {
					sleep = 0 // there may be more due work right now
				} else if at, ok, err := m.Store.NextDue(ctx); err == nil && ok {
					sleep = m.untilDue(at)
				}
			}
		}
		if running >= m.Concurrency {
			sleep = m.PollInterval // a finishing job wakes us via done
			hb.beat(ctx, nil)      // busy is alive: the round is the jobs running
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(sleep)
	}
}

// untilDue returns how long the loop sleeps when the next job can be
// claimed at at (certfleet.JobStore.NextDue): until then exactly, so a
// renewal placed at its latest start is not started late (issue 16: a
// floor of minIdle on every sleep made due renewals up to a second late,
// 0.017 of a 1-minute certificate's lifetime), at most PollInterval. A
// time already past means another instance claimed it meanwhile, or many
// jobs are leased (NextDue answers early then): idle minIdle rather than
// spin. Finished jobs wake the loop anyway. A time within a lease may be
// a leased job's lease end, which heartbeats keep moving and a release
// (after a store outage) ends early while change notifications may be
// down: the loop looks again after at most minIdle then, as it did
// before (the combined failover run, BENCHMARKS §13, saw a released job
// wait 13 s otherwise).
func (m *Manager) untilDue(at time.Time) time.Duration {
	d := at.Sub(m.Now())
	switch {
	case d <= 0:
		return minIdle
	case d <= m.Lease:
		return min(d, minIdle)
	}
	return min(d, m.PollInterval)
}

// Store retries of the daemon loop: the first look at the store after a
// failed one comes storeRetryMin later, each further one twice as late, at
// most storeRetryMax (and PollInterval). Ours, issue 16: a database restart
// lasts seconds, and the scheduler is idle until it looks again; the
// per-job backoff it used (a minute, capped at PollInterval: 30 s) kept
// an instance idle for half a minute after the database was back. A look
// is one query, so a few a second during an outage cost nothing.
const (
	storeRetryMin = 250 * time.Millisecond
	storeRetryMax = 2 * time.Second
)

// storeRetry returns how long the loop waits after its failures-th failed
// look at the store in a row (1 for the first).
func (m *Manager) storeRetry(failures int) time.Duration {
	d := storeRetryMin
	for i := 1; i < failures && d < storeRetryMax; i++ {
		d *= 2
	}
	return min(d, storeRetryMax, m.PollInterval)
}

// heartbeatEvery bounds how often a scheduler writes its heartbeat: rounds
// come as often as jobs finish, and a sign of life every few seconds is
// plenty for a page that calls a scheduler stale after minutes.
const heartbeatEvery = 10 * time.Second

// heartbeater writes the scheduler's heartbeat (certfleet.HeartbeatStore)
// after its rounds, at most every heartbeatEvery unless the round's error
// changed. A store without heartbeats makes it a no-op.
type heartbeater struct {
	m       *Manager
	store   certfleet.HeartbeatStore
	started time.Time
	last    time.Time
	lastErr string
	warned  bool
}

func (m *Manager) heartbeat() *heartbeater {
	hs, _ := m.Store.(certfleet.HeartbeatStore)
	return &heartbeater{m: m, store: hs, started: m.Now()}
}

func (h *heartbeater) beat(ctx context.Context, roundErr error) {
	if h.store == nil || ctx.Err() != nil {
		return
	}
	now := h.m.Now()
	msg := ""
	if roundErr != nil {
		msg = roundErr.Error()
	}
	if msg == h.lastErr && now.Sub(h.last) < heartbeatEvery {
		return
	}
	err := h.store.PutHeartbeat(ctx, certfleet.Heartbeat{Instance: h.m.Instance, StartedAt: h.started, RoundAt: now, Interval: h.m.PollInterval, Error: msg})
	if err != nil {
		if !h.warned && ctx.Err() == nil {
			h.m.Logger.Warn("cannot record the scheduler's heartbeat; the dashboard will call this instance stale", certfleet.LogError, err)
			h.warned = true
		}
		return
	}
	h.last, h.lastErr, h.warned = now, msg, false
}
