// Package manager is certfleet's renewal scheduler: it finds due jobs in the
// store, leases them, decides whether each needs a certificate now (first
// issuance, spec change, renewal window reached, ARI), orders it through an
// Issuer, archives it, hands it to a Deployer, and schedules the next check,
// backing off on failure.
//
// It talks only to root interfaces (certfleet.Store, certfleet.Issuer); it
// does not speak ACME, touch files or open databases. cmd/certfleet wires it.
// Several Managers (in one process or many instances) may share one store:
// leases make sure a job is worked on by one of them at a time.
package manager

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Defaults for Manager's zero fields, with their reasons.
const (
	// DefaultConcurrency bounds orders in flight. Public CAs rate-limit per
	// account, and Pebble wedges above 16 (shared/REAL-COMPONENTS.md).
	DefaultConcurrency = 8
	// DefaultLease is how long a claimed job stays ours without renewal. A
	// crashed instance's work is taken over after at most this long.
	DefaultLease = 2 * time.Minute
	// DefaultPollInterval is the longest the scheduler sleeps between looks
	// at the store, so work added by another instance (or a missed wake-up)
	// is noticed within it.
	DefaultPollInterval = 30 * time.Second
	// DefaultARIInterval is how often the CA's renewalInfo is asked when it
	// sent no Retry-After. RFC 9773 §4.3.2 suggests clients poll about
	// twice a day; Let's Encrypt sends Retry-After of 6 hours.
	DefaultARIInterval = 6 * time.Hour
	// minIdle is the shortest sleep of the daemon loop after a look at the
	// store found less work than it could take: it bounds the loop's rate
	// while due jobs are leased (in flight here or on another instance).
	minIdle = time.Second
)

// Deployer receives every certificate after it is archived (e.g. writes the
// files and runs the post-issue commands). An error is logged and reported;
// it does not make the issuance fail, since the certificate is safe in the
// archive and deploying is retried at the next sync.
type Deployer interface {
	Deploy(ctx context.Context, spec certfleet.CertificateSpec, iss certfleet.Issuance) error
}

// Manager schedules and runs renewal jobs. Set the fields, then call Run
// (daemon) or RunOnce (one pass). Fields must not change after the first call.
type Manager struct {
	// Store is required.
	Store certfleet.Store
	// Issuers maps account names (certfleet.CertificateSpec.AccountName)
	// to the Issuer ordering with that account. Required.
	Issuers map[string]certfleet.Issuer
	// Deployer, if set, gets every new certificate.
	Deployer Deployer
	// Prepare, if set, runs before an order is placed or resumed (never
	// for a job that is not due), e.g. to open a firewall port; done, if
	// non-nil, runs when the order has ended, issued or failed. An error
	// fails the attempt (with backoff) without contacting the CA.
	Prepare func(ctx context.Context, spec certfleet.CertificateSpec) (done func(), err error)
	// Instance names this manager as lease owner. Default: host-pid-random.
	Instance string
	// Concurrency bounds jobs worked on at once. Default DefaultConcurrency.
	Concurrency int
	// Lease is the lease length; it is extended every Lease/3 while a job
	// runs. Default DefaultLease.
	Lease time.Duration
	// PollInterval caps the daemon's sleep. Default DefaultPollInterval.
	PollInterval time.Duration
	// ARIInterval is how often renewalInfo is refreshed absent Retry-After.
	// Default DefaultARIInterval.
	ARIInterval time.Duration
	// Now and Rand are the clock and the randomness (in [0,1)) for backoff
	// jitter. Defaults: time.Now and certfleet.RandFloat.
	Now  func() time.Time
	Rand func() float64
	// Logger receives log records; nil discards them.
	Logger *slog.Logger
	// Events, if set, receives an event for every issuance, renewal,
	// failed attempt and deploy result (the audit trail, metrics, alerts).
	// Its errors are logged; they never fail the work.
	Events certfleet.EventSink
	// Budget, if set, is consulted just before each new order is placed
	// (not when an order in flight is resumed) and told how the attempt
	// ended (package ratelimit). Work it refuses with a
	// *certfleet.DeferError is deferred to the time it names: recorded as
	// an attempt with OutcomeDeferred and emitted as EventDeferred, and
	// neither counted as a failure nor backed off.
	Budget certfleet.Budget

	once sync.Once
	wake chan struct{} // buffered(1); a send means "look at the store now"
}

func (m *Manager) init() {
	m.once.Do(func() {
		if m.Concurrency <= 0 {
			m.Concurrency = DefaultConcurrency
		}
		if m.Lease <= 0 {
			m.Lease = DefaultLease
		}
		if m.PollInterval <= 0 {
			m.PollInterval = DefaultPollInterval
		}
		if m.ARIInterval <= 0 {
			m.ARIInterval = DefaultARIInterval
		}
		if m.Now == nil {
			m.Now = time.Now
		}
		if m.Rand == nil {
			m.Rand = certfleet.RandFloat
		}
		if m.Logger == nil {
			m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		if m.Instance == "" {
			m.Instance = DefaultInstance()
		}
		m.wake = make(chan struct{}, 1)
	})
}

// DefaultInstance returns a lease-owner name unique to this process:
// hostname, pid and a random suffix (a restarted process is a new owner, so
// it never mistakes a dead predecessor's lease for its own).
func DefaultInstance() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ParseInstance splits a lease owner made by DefaultInstance into its host
// name and process ID; ok is false for other owner names.
func ParseInstance(owner string) (host string, pid int, ok bool) {
	i := strings.LastIndex(owner, "-")
	if i <= 0 {
		return "", 0, false
	}
	rest := owner[:i]
	j := strings.LastIndex(rest, "-")
	if j <= 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return rest[:j], pid, true
}

// ReleaseLeases gives up the leases held by owners for which dead reports
// true (e.g. processes on this host that no longer exist, after a kill -9),
// so their work resumes at once instead of after the lease expires. It
// returns how many leases it released.
func (m *Manager) ReleaseLeases(ctx context.Context, dead func(owner string) bool) (int, error) {
	m.init()
	jobs, err := m.Store.Jobs(ctx, certfleet.JobFilter{Leased: true})
	if err != nil {
		return 0, fmt.Errorf("list jobs: %w", err)
	}
	n := 0
	now := m.Now()
	for _, j := range jobs {
		if j.LeaseOwner == "" || j.LeaseOwner == m.Instance || !j.LeaseUntil.After(now) || !dead(j.LeaseOwner) {
			continue
		}
		err := m.Store.ReleaseLease(ctx, j.JobKey, j.LeaseOwner)
		if certfleet.ErrorCode(err) == certfleet.ELEASELOST {
			continue // taken over meanwhile
		} else if err != nil {
			return n, fmt.Errorf("release lease of %s held by %s: %w", j.JobKey, j.LeaseOwner, err)
		}
		m.Logger.Info("released the lease of a process that is gone", certfleet.LogCertificate, j.Spec,
			certfleet.LogKeyType, string(j.KeyType), "owner", j.LeaseOwner)
		n++
	}
	return n, nil
}

// Wake makes a running daemon look at the store at once (new specs, an
// operator's retry). It never blocks.
func (m *Manager) Wake() {
	m.init()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

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
}

// OK reports whether nothing failed.
func (r Report) OK() bool { return r.Failed == 0 && r.DeployFailed == 0 }

// RunOnce works on every job that is due now, with bounded concurrency, and
// returns when they are all done: one pass for cron users and the demo. Jobs
// that fail are rescheduled with backoff and not retried within the pass.
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
				res := m.process(ctx, job)
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
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				storeFailures++
				sleep = min(certfleet.Backoff(storeFailures, m.Rand()), m.PollInterval)
				m.Logger.Error("cannot read due work from the store; retrying", certfleet.LogError, err, "retry_in", sleep)
			} else {
				storeFailures = 0
				for _, job := range jobs {
					running++
					wg.Add(1)
					go func() {
						defer wg.Done()
						m.process(ctx, job)
						done <- struct{}{}
					}()
				}
				if len(jobs) == free {
					sleep = 0 // there may be more due work right now
				} else if at, ok, err := m.Store.NextDue(ctx); err == nil && ok {
					// NextDue counts leased jobs too (ours in flight,
					// or another instance's), so a time in the past
					// does not mean claimable work: idle a moment
					// rather than spin. Finished jobs wake us anyway.
					sleep = min(max(at.Sub(m.Now()), minIdle), m.PollInterval)
				}
			}
		}
		if running >= m.Concurrency {
			sleep = m.PollInterval // a finishing job wakes us via done
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

// process works on one claimed job and always leaves it unleased (or lost to
// another owner).
func (m *Manager) process(ctx context.Context, job certfleet.Job) Result {
	start := m.Now()
	log := m.Logger.With(certfleet.LogCertificate, job.Spec, certfleet.LogKeyType, string(job.KeyType))
	res := Result{Key: job.JobKey}

	// Keep the lease alive while we work; lose it and we stop.
	workCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopLease := m.keepLease(workCtx, job.JobKey, cancel, log)
	defer stopLease()

	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}

	d, err := m.decide(workCtx, job)
	if err == nil && d.deferUntil != nil {
		cctx, ccancel := cleanupCtx()
		defer ccancel()
		if err := m.Store.Reschedule(cctx, job.JobKey, m.Instance, *d.deferUntil); err != nil {
			log.Error("reschedule job", certfleet.LogError, err)
		}
		log.Debug("not due yet", certfleet.LogNextAt, d.deferUntil.NextAt, "reason", d.reason)
		res.Outcome, res.NextAt = certfleet.OutcomeDeferred, d.deferUntil.NextAt
		res.Duration = m.Now().Sub(start)
		return res
	}
	if err == nil && m.Budget != nil && job.PendingOrderURL == "" {
		// A new order that a budget is certain to defer skips Prepare;
		// the reservation itself is made just before the order.
		err = m.Budget.Check(workCtx, m.orderIntent(job, d))
	}
	var iss certfleet.Issuance
	if err == nil {
		log.Info("ordering certificate", "reason", d.reason, certfleet.LogIdentifiers, certfleet.IdentifierValues(d.spec.Identifiers))
		iss, err = m.prepareAndIssue(workCtx, job, &d)
	}
	if cause := context.Cause(workCtx); err != nil && cause != nil && cause != context.Canceled && ctx.Err() == nil {
		err = fmt.Errorf("%w (%v)", err, cause) // the lease was lost
	}
	res.Duration = m.Now().Sub(start)

	cctx, ccancel := cleanupCtx()
	defer ccancel()
	if de, ok := certfleet.AsDeferError(err); ok && ctx.Err() == nil {
		return m.deferJob(cctx, job, start, de, log)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: give the job back untouched; the pending
			// order (if any) is resumed by whoever claims it next.
			_ = m.Store.ReleaseLease(cctx, job.JobKey, m.Instance)
			res.Outcome, res.Err = certfleet.OutcomeFailed, err
			return res
		}
		if certfleet.ErrorCode(err) == certfleet.ELEASELOST {
			log.Warn("lease lost to another instance; dropping the job", certfleet.LogError, err)
			res.Outcome, res.Err = certfleet.OutcomeFailed, err
			return res
		}
		next := m.retryTime(job.Failures+1, err)
		attempt := certfleet.Attempt{
			JobKey: job.JobKey, Instance: m.Instance, StartedAt: start, FinishedAt: m.Now(),
			Outcome: certfleet.OutcomeFailed, OrderURL: d.orderURL, Error: err.Error(), ProblemType: certfleet.ProblemType(err),
		}
		if ferr := m.Store.FailJob(cctx, job.JobKey, m.Instance, attempt, next); ferr != nil {
			log.Error("record failed attempt", certfleet.LogError, ferr)
		}
		log.Error("certificate order failed; will retry", certfleet.LogError, err,
			"failures", job.Failures+1, certfleet.LogNextAt, next)
		m.emit(cctx, certfleet.Event{Kind: certfleet.EventOrderFailed, Certificate: job.Spec, KeyType: job.KeyType,
			Reason: certfleet.FailureReason(err), Detail: err.Error()})
		res.Outcome, res.Err, res.NextAt = certfleet.OutcomeFailed, err, next
		return res
	}

	res.Outcome, res.Issuance, res.NextAt = certfleet.OutcomeIssued, &iss, d.next.NextAt
	log.Info("certificate issued", certfleet.LogSerial, iss.Serial, certfleet.LogNotAfter, iss.NotAfter,
		certfleet.LogNextAt, d.next.NextAt, "took", res.Duration.Round(time.Millisecond))
	kind, detail := certfleet.EventIssued, d.reason
	if d.current != nil {
		kind = certfleet.EventRenewed
		detail = fmt.Sprintf("%s; replaces serial %s", d.reason, d.current.Serial)
	}
	m.emit(cctx, certfleet.Event{Kind: kind, Certificate: job.Spec, KeyType: job.KeyType,
		Serial: iss.Serial, IssuanceID: iss.ID, Detail: detail})
	if m.Deployer != nil {
		derr := m.Deployer.Deploy(cctx, d.spec, iss)
		e := certfleet.Event{Kind: certfleet.EventDeployed, Certificate: job.Spec, KeyType: job.KeyType,
			Serial: iss.Serial, IssuanceID: iss.ID}
		if derr != nil {
			log.Error("deploy certificate", certfleet.LogError, derr)
			res.Err = derr
			e.Kind, e.Reason, e.Detail = certfleet.EventDeployFailed, certfleet.FailureReason(derr), derr.Error()
		}
		m.emit(cctx, e)
	}
	return res
}

// orderIntent describes the order job would place. Renewal is a guess
// (a like-for-like renewal; whether "replaces" is sent depends on the CA
// offering ARI), corrected by the issuer's BeforeNewOrder.
func (m *Manager) orderIntent(job certfleet.Job, d decision) certfleet.OrderIntent {
	return certfleet.OrderIntent{Job: job.JobKey, Account: d.spec.AccountName(), Identifiers: d.spec.Identifiers,
		Renewal: d.leaf != nil && job.CurrentRevision == d.spec.Revision(job.KeyType), At: m.Now()}
}

// deferJob puts a job off to the time a rate-limit budget (or the CA) named:
// a deferred attempt with the reason, no failure, no backoff.
func (m *Manager) deferJob(ctx context.Context, job certfleet.Job, start time.Time, de *certfleet.DeferError, log *slog.Logger) Result {
	now := m.Now()
	until := de.Until
	if !until.After(now) {
		until = now.Add(minIdle) // freed meanwhile: try again at once
	}
	attempt := certfleet.Attempt{
		JobKey: job.JobKey, Instance: m.Instance, StartedAt: start, FinishedAt: now,
		Outcome: certfleet.OutcomeDeferred, Error: de.Error(),
	}
	if err := m.Store.DeferJob(ctx, job.JobKey, m.Instance, attempt, until); err != nil {
		log.Error("record deferral", certfleet.LogError, err)
	}
	log.Info("order deferred to stay within the CA's rate limits", "limit", de.Limit, certfleet.LogNextAt, until, "reason", de.Reason)
	m.emit(ctx, certfleet.Event{Kind: certfleet.EventDeferred, Certificate: job.Spec, KeyType: job.KeyType,
		Reason: de.Limit, Detail: de.Error()})
	return Result{Key: job.JobKey, Outcome: certfleet.OutcomeDeferred, Err: de, NextAt: until, Duration: now.Sub(start)}
}

// emit stamps e with the time and this instance and hands it to Events.
func (m *Manager) emit(ctx context.Context, e certfleet.Event) {
	if m.Events == nil {
		return
	}
	if e.At.IsZero() {
		e.At = m.Now()
	}
	if e.Actor == "" {
		e.Actor = "instance:" + m.Instance
	}
	if err := m.Events.RecordEvent(ctx, e); err != nil {
		m.Logger.Error("record event", "event", e, certfleet.LogError, err)
	}
}

// prepareAndIssue runs Prepare, the order, and Prepare's done.
func (m *Manager) prepareAndIssue(ctx context.Context, job certfleet.Job, d *decision) (certfleet.Issuance, error) {
	if m.Prepare != nil {
		done, err := m.Prepare(ctx, d.spec)
		if err != nil {
			return certfleet.Issuance{}, fmt.Errorf("prepare %s before ordering: %w", d.spec.Name, err)
		}
		if done != nil {
			defer done()
		}
	}
	return m.issue(ctx, job, d)
}

// keepLease extends the job's lease every Lease/3 until stopped; when the
// store says the lease is lost, it cancels the work with that error.
func (m *Manager) keepLease(ctx context.Context, key certfleet.JobKey, cancel context.CancelCauseFunc, log *slog.Logger) (stop func()) {
	stopped := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(m.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stopped:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				err := m.Store.ExtendLease(ctx, key, m.Instance, m.Now().Add(m.Lease))
				if certfleet.ErrorCode(err) == certfleet.ELEASELOST {
					cancel(err)
					return
				} else if err != nil && ctx.Err() == nil {
					log.Warn("extend lease", certfleet.LogError, err)
				}
			}
		}
	}()
	return func() { close(stopped); <-finished }
}

// decision is what decide found out about a claimed job.
type decision struct {
	spec       certfleet.CertificateSpec
	issuer     certfleet.Issuer
	current    *certfleet.Issuance
	leaf       *x509.Certificate
	reason     string
	deferUntil *certfleet.ScheduleUpdate // non-nil: not due, reschedule
	next       certfleet.ScheduleUpdate  // after a successful issuance
	orderURL   string
}

// decide works out whether job needs a certificate now, and why.
func (m *Manager) decide(ctx context.Context, job certfleet.Job) (decision, error) {
	var d decision
	spec, err := m.Store.Spec(ctx, job.Spec)
	if err != nil {
		return d, fmt.Errorf("load spec %q: %w", job.Spec, err)
	}
	d.spec = spec
	iss, ok := m.Issuers[spec.AccountName()]
	if !ok {
		return d, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID, "certificate %q uses account %q, which is not configured", spec.Name, spec.AccountName())}
	}
	d.issuer = iss
	if job.CurrentID != 0 {
		cur, err := m.Store.Issuance(ctx, job.CurrentID)
		if err != nil {
			return d, fmt.Errorf("load current issuance %d: %w", job.CurrentID, err)
		}
		leaf, err := cur.Leaf()
		if err != nil {
			return d, fmt.Errorf("current issuance %d: %w", job.CurrentID, err)
		}
		d.current, d.leaf = &cur, leaf
	}
	if d.leaf != nil {
		blocked, err := m.keyBlocked(ctx, d.leaf.PublicKey)
		if err != nil {
			return d, err
		}
		if blocked {
			// certfleet compromise: replace it now, with a new key.
			d.reason = "key compromised"
			return d, nil
		}
	}
	now := m.Now()
	switch {
	case d.current == nil:
		d.reason = "no certificate yet"
		return d, nil
	case job.PendingOrderURL != "":
		d.reason = "resuming order in flight"
		return d, nil
	case job.CurrentRevision != spec.Revision(job.KeyType):
		d.reason = "certificate spec changed"
		return d, nil
	case job.Failures > 0:
		d.reason = "retrying after failure"
		return d, nil
	case !d.leaf.NotAfter.After(now):
		d.reason = "certificate expired"
		return d, nil
	}
	at, upd := m.renewalTime(ctx, job, d)
	if !at.After(now) {
		d.reason = "renewal window reached"
		if !job.ARIStart.IsZero() || !upd.ARIStart.IsZero() {
			d.reason = "ARI renewal window reached"
		}
		return d, nil
	}
	upd.NextAt = at
	if !upd.ARIRetryAt.IsZero() && upd.ARIRetryAt.Before(at) {
		upd.NextAt = upd.ARIRetryAt
	}
	d.deferUntil = &upd
	d.reason = "renewal not due"
	return d, nil
}

// renewalTime returns when the current certificate should be renewed, asking
// the CA's ARI endpoint when it is time to, and the ARI state to keep.
func (m *Manager) renewalTime(ctx context.Context, job certfleet.Job, d decision) (time.Time, certfleet.ScheduleUpdate) {
	now := m.Now()
	upd := certfleet.ScheduleUpdate{ARIStart: job.ARIStart, ARIEnd: job.ARIEnd, ARIRetryAt: job.ARIRetryAt}
	if ri, ok := d.issuer.(certfleet.RenewalInfoer); ok && !now.Before(job.ARIRetryAt) {
		info, err := ri.RenewalInfo(ctx, d.leaf)
		switch {
		case err == nil:
			upd.ARIStart, upd.ARIEnd = info.Start, info.End
			upd.ARIRetryAt = info.RetryAfter
			if upd.ARIRetryAt.IsZero() || upd.ARIRetryAt.Before(now) {
				upd.ARIRetryAt = now.Add(m.ARIInterval)
			}
		case certfleet.ErrorCode(err) == certfleet.ENOTFOUND:
			upd = certfleet.ScheduleUpdate{} // the CA offers no ARI
		default:
			// ARI is advisory: on error keep what we knew and ask again later.
			m.Logger.Warn("renewalInfo request failed; using the last known window", certfleet.LogCertificate, job.Spec, certfleet.LogError, err)
			upd.ARIRetryAt = now.Add(min(m.ARIInterval, time.Hour))
		}
	}
	if !upd.ARIStart.IsZero() && !upd.ARIEnd.IsZero() {
		w := certfleet.RenewalInfo{Start: upd.ARIStart, End: upd.ARIEnd}
		return certfleet.ARIRenewalTime(w, d.leaf.NotBefore, d.leaf.NotAfter, d.spec.RenewBefore, now, stableRand(d.current.Fingerprint, w)), upd
	}
	return certfleet.DefaultRenewalTime(d.leaf.NotBefore, d.leaf.NotAfter, d.spec.RenewBefore), upd
}

// stableRand derives the "uniform random time within the suggested window"
// (RFC 9773 §4.2) from the certificate and the window, so that every
// instance, and every re-check of an unchanged window, picks the same time
// instead of re-rolling it (which would drift renewals towards the window's
// end).
func stableRand(fingerprint string, w certfleet.RenewalInfo) float64 {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d", fingerprint, w.Start.Unix(), w.End.Unix())
	return float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / (1 << 53)
}

// issue orders the certificate, archives it and schedules the next check.
func (m *Manager) issue(ctx context.Context, job certfleet.Job, d *decision) (certfleet.Issuance, error) {
	var (
		key    crypto.Signer
		keyPEM []byte
		csr    *x509.CertificateRequest
	)
	if len(d.spec.CSR) > 0 {
		// CSR mode: the host keeps the key; no key is made or stored.
		var err error
		if csr, err = parseSpecCSR(d.spec); err != nil {
			return certfleet.Issuance{}, certfleet.ErrNoRetry{Err: err}
		}
		blocked, err := m.keyBlocked(ctx, csr.PublicKey)
		if err != nil {
			return certfleet.Issuance{}, err
		}
		if blocked {
			return certfleet.Issuance{}, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID,
				"certificate %q: the key of its CSR was declared compromised (certfleet compromise); the host must submit a CSR made with a new key", d.spec.Name)}
		}
	} else {
		var err error
		var resume bool
		if key, resume, err = m.certificateKey(ctx, job, *d); err != nil {
			return certfleet.Issuance{}, err
		}
		if !resume {
			job.PendingOrderURL = "" // its key is compromised: a new order
		}
		if keyPEM, err = certfleet.MarshalPrivateKey(key); err != nil {
			return certfleet.Issuance{}, err
		}
	}
	req := certfleet.IssueRequest{
		Spec: d.spec, KeyType: job.KeyType, Key: key, CSR: csr,
		ResumeOrderURL: job.PendingOrderURL,
		OnOrder: func(ctx context.Context, orderURL string) error {
			d.orderURL = orderURL
			return m.Store.SetPendingOrder(ctx, job.JobKey, m.Instance, orderURL, keyPEM)
		},
	}
	if job.PendingOrderURL != "" {
		d.orderURL = job.PendingOrderURL
	}
	// RFC 9773 §5: "replaces" names the certificate being renewed; only a
	// like-for-like renewal is one (changed names are a new certificate).
	if d.leaf != nil && job.CurrentRevision == d.spec.Revision(job.KeyType) {
		req.Replaces = d.leaf
	}
	intent := m.orderIntent(job, *d)
	var reservation int64
	if m.Budget != nil {
		// intent.OrderURL ends as the order this attempt worked on: the
		// resumed one, or the new one once the CA created it ("" if the
		// CA refused the new order).
		intent.OrderURL = job.PendingOrderURL
		onOrder := req.OnOrder
		req.OnOrder = func(ctx context.Context, orderURL string) error {
			intent.OrderURL = orderURL
			return onOrder(ctx, orderURL)
		}
		reserved := false
		req.BeforeNewOrder = func(ctx context.Context, replaces bool) error {
			if reserved && (replaces || !intent.Renewal) {
				// The same order placed again (the account was
				// replaced or its key changed): already reserved. An
				// exempt renewal whose "replaces" the CA refused is
				// not: placed without it, it counts.
				return nil
			}
			intent.Renewal, intent.At = replaces, m.Now()
			id, err := m.Budget.Reserve(ctx, intent)
			if err != nil {
				return err
			}
			reservation, reserved, intent.OrderURL = id, true, ""
			return nil
		}
	}
	res, err := d.issuer.Issue(ctx, req)
	if m.Budget != nil {
		// Like the rest of a job's clean-up: done even when ctx ends
		// (shutdown), but bounded, so a hung store cannot block it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		intent.At = m.Now()
		m.Budget.Finish(fctx, intent, reservation, err)
		cancel()
	}
	if err != nil {
		return certfleet.Issuance{}, err
	}
	chain, err := certfleet.ParseChain(res.ChainPEM)
	if err != nil {
		return certfleet.Issuance{}, fmt.Errorf("certificate from %s: %w", res.CertURL, err)
	}
	leaf := chain[0]
	now := m.Now()
	iss := certfleet.Issuance{
		Spec: job.Spec, KeyType: job.KeyType, SpecRevision: d.spec.Revision(job.KeyType),
		Identifiers: d.spec.Identifiers,
		Serial:      leaf.SerialNumber.Text(16), Fingerprint: certfleet.Fingerprint(leaf),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		ChainPEM: res.ChainPEM, KeyPEM: keyPEM,
		ARICertID: certfleet.ARICertID(leaf),
		CA:        res.CA, AccountURL: res.AccountURL, OrderURL: res.OrderURL, CertURL: res.CertURL,
		IssuedAt: now,
	}
	if d.current != nil {
		iss.Replaces = d.current.ID
	}
	d.next = m.firstCheck(*d, leaf, now)
	attempt := certfleet.Attempt{
		JobKey: job.JobKey, Instance: m.Instance, StartedAt: now, FinishedAt: now,
		Outcome: certfleet.OutcomeIssued, OrderURL: res.OrderURL,
	}
	stored, err := m.Store.CompleteIssuance(context.WithoutCancel(ctx), m.Instance, iss, d.next, attempt)
	if err != nil {
		return certfleet.Issuance{}, fmt.Errorf("archive certificate %s: %w", iss.Serial, err)
	}
	return stored, nil
}

// parseSpecCSR decodes the PEM CSR of a CSR-mode spec (checked by the API
// when it was submitted).
func parseSpecCSR(sp certfleet.CertificateSpec) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(sp.CSR)
	if block == nil {
		return nil, certfleet.Errorf(certfleet.EINVALID, "certificate %q: its CSR is not PEM", sp.Name)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, certfleet.Errorf(certfleet.EINVALID, "certificate %q: its CSR is invalid: %v", sp.Name, err)
	}
	return csr, nil
}

// firstCheck schedules the first look at a new certificate: its default
// renewal time, or sooner when the CA offers ARI (whose window may differ).
func (m *Manager) firstCheck(d decision, leaf *x509.Certificate, now time.Time) certfleet.ScheduleUpdate {
	at := certfleet.DefaultRenewalTime(leaf.NotBefore, leaf.NotAfter, d.spec.RenewBefore)
	if _, ok := d.issuer.(certfleet.RenewalInfoer); ok {
		if check := now.Add(m.ARIInterval); check.Before(at) {
			at = check
		}
	}
	return certfleet.ScheduleUpdate{NextAt: at}
}

// certificateKey picks the key for the order: the pending order's key when
// resuming (its CSR must match), the current key when the spec reuses keys,
// else a fresh one. A key declared compromised (certfleet.KeyBlocklist) is
// never picked; resume is false when the pending order's key was one, so
// that a new order is placed instead.
func (m *Manager) certificateKey(ctx context.Context, job certfleet.Job, d decision) (key crypto.Signer, resume bool, err error) {
	resume = job.PendingOrderURL != ""
	if job.PendingOrderURL != "" && len(job.PendingKeyPEM) > 0 {
		k, err := certfleet.ParsePrivateKey(job.PendingKeyPEM)
		if err == nil {
			blocked, err := m.keyBlocked(ctx, k.Public())
			if err != nil {
				return nil, false, err
			}
			if !blocked {
				return k, true, nil
			}
			m.Logger.Warn("pending order's key was declared compromised; starting a new order with a new key", certfleet.LogCertificate, job.Spec)
		} else {
			m.Logger.Warn("pending order's key is unreadable; starting a new order", certfleet.LogCertificate, job.Spec, certfleet.LogError, err)
		}
		resume = false
	}
	if d.spec.ReuseKey && d.current != nil && len(d.current.KeyPEM) > 0 {
		k, err := certfleet.ParsePrivateKey(d.current.KeyPEM)
		if err == nil {
			if kt, err := certfleet.KeyTypeOf(k.Public()); err == nil && kt == job.KeyType {
				blocked, err := m.keyBlocked(ctx, k.Public())
				if err != nil {
					return nil, false, err
				}
				if !blocked {
					return k, resume, nil
				}
				m.Logger.Warn("reuse_key: the current key was declared compromised; making a new one", certfleet.LogCertificate, job.Spec)
			}
		}
	}
	k, err := certfleet.GenerateKey(job.KeyType)
	if err != nil {
		return nil, false, fmt.Errorf("generate %s key: %w", job.KeyType, err)
	}
	return k, resume, nil
}

// keyBlocked reports whether the key of pub was declared compromised.
func (m *Manager) keyBlocked(ctx context.Context, pub crypto.PublicKey) (bool, error) {
	id, err := certfleet.KeyID(pub)
	if err != nil {
		return false, err
	}
	blocked, err := m.Store.KeyBlocked(ctx, id)
	if err != nil {
		return false, fmt.Errorf("check the compromised-key list: %w", err)
	}
	return blocked, nil
}

// retryTime returns when to try a failed job again: exponential backoff with
// jitter, never before the CA's Retry-After, and at the backoff cap for
// failures that retrying cannot fix.
func (m *Manager) retryTime(failures int, err error) time.Time {
	now := m.Now()
	d := certfleet.Backoff(failures, m.Rand())
	var noRetry certfleet.ErrNoRetry
	if errors.As(err, &noRetry) {
		d = certfleet.Backoff(64, m.Rand())
	}
	next := now.Add(d)
	if at, ok := certfleet.RetryAfter(err); ok && at.After(next) {
		next = at
	}
	return next
}
