package manager

// One attempt at a claimed job, from decision to recorded outcome: issued
// (then deployed), failed (backed off), deferred or not due; and the events
// that report it.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
)

// runMode says who works on a job: the daemon's loop (Run) or a one-shot
// pass (RunOnce).
type runMode int

const (
	inDaemon runMode = iota
	inPass
)

// process works on one claimed job and always leaves it unleased (or lost to
// another owner).
func (m *Manager) process(ctx context.Context, job certfleet.Job, mode runMode) Result {
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

	d, err := m.decide(workCtx, job, mode)
	if err == nil && d.deferUntil != nil {
		u := *d.deferUntil
		u.SeenRevision = job.TargetRevision // a change meanwhile makes it due at once
		if err := m.save(workCtx, "the next check", log, func(ctx context.Context) error {
			return m.Store.Reschedule(ctx, job.JobKey, m.Instance, u)
		}); err != nil {
			log.Error("reschedule job", certfleet.LogError, err)
		}
		log.Debug("not due yet", certfleet.LogNextAt, d.deferUntil.NextAt, "reason", d.reason)
		res.Outcome, res.NextAt = certfleet.OutcomeDeferred, d.deferUntil.NextAt
		res.Duration = m.Now().Sub(start)
		return res
	}
	// The CA's circuit breaker (outage.go): while the CA is down, one job
	// at a time probes it and the others wait, without an attempt.
	var ca string
	probe := false
	if err == nil {
		ca = caOf(d.issuer, d.spec)
		var hold bool
		if probe, hold = m.caGate(ca, job.JobKey); hold {
			return m.holdJob(ctx, job, start, ca, log)
		}
	}
	if err == nil && m.Budget != nil && job.PendingOrderURL == "" {
		// A new order that a budget is certain to defer skips Prepare;
		// the reservation itself is made just before the order.
		err = budgetError(m.Budget.Check(workCtx, m.orderIntent(job, d)))
	}
	var iss certfleet.Issuance
	if err == nil {
		level := slog.LevelInfo
		if probe {
			level = slog.LevelDebug // the outage's start and end are what the log says
		}
		log.Log(workCtx, level, "ordering certificate", "reason", d.reason, certfleet.LogIdentifiers, certfleet.IdentifierValues(d.spec.Identifiers))
		iss, err = m.prepareAndIssue(workCtx, job, &d)
	}
	if cause := context.Cause(workCtx); err != nil && cause != nil && cause != context.Canceled && ctx.Err() == nil {
		err = fmt.Errorf("%w (%v)", err, cause) // the lease was lost
	}
	res.Duration = m.Now().Sub(start)
	if err == nil {
		m.orderTook(ca, res.Duration)
	}

	cctx, ccancel := cleanupCtx()
	defer ccancel()
	outage := err != nil && certfleet.IsCAOutage(err) && ctx.Err() == nil
	var probeAt time.Time
	if ca != "" {
		switch {
		case ctx.Err() != nil:
			if probe {
				m.probeEnded(ca)
			}
		case outage:
			probeAt = m.caFailed(ca, job.JobKey, probe, err)
		case err == nil || certfleet.ProblemType(err) != "":
			m.caAnswered(cctx, ca, job.JobKey, start)
		case probe:
			m.probeEnded(ca)
		}
	}
	if de, ok := certfleet.AsDeferError(err); ok && ctx.Err() == nil {
		return m.deferJob(cctx, job, start, de, log)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: give the job back untouched; the pending
			// order (if any) is resumed by whoever claims it next. As
			// at a store outage (below), the lease ends with its owner
			// still named, so that another instance takes this work
			// cut off mid-way before the jobs nobody has started.
			stopLease()
			if rerr := m.Store.ExtendLease(cctx, job.JobKey, m.Instance, m.Now()); rerr != nil && certfleet.ErrorCode(rerr) != certfleet.ELEASELOST {
				log.Warn("give the job back at shutdown; another instance takes it when its lease runs out", certfleet.LogError, rerr)
			}
			res.Outcome, res.Err = certfleet.OutcomeFailed, err
			return res
		}
		if certfleet.ErrorCode(err) == certfleet.ELEASELOST {
			log.Warn("lease lost to another instance; dropping the job", certfleet.LogError, err)
			res.Outcome, res.Err = certfleet.OutcomeFailed, err
			return res
		}
		if storeDown(err) {
			// The store, not the job, failed: no failed attempt, no
			// backoff. The job is given back once the store answers,
			// and claimed again at once (here or elsewhere): its lease
			// is ended now with its owner still named, which is how a
			// shared store's claim tells work cut off mid-way from work
			// nobody started, and takes it first (sqlstore's
			// qClaimDue). A plain release put it behind every job of
			// the same due time not yet started: PostgreSQL orders
			// equal due times by row version, and a release is a new
			// one (issue 16: claimed again 10–12 s after the
			// database's return, BENCHMARKS §18).
			// The heartbeat stops first: a beat after the give-back
			// would lease the job again for a whole Lease.
			stopLease()
			if rerr := m.save(workCtx, "the job's release", log, func(ctx context.Context) error {
				return m.Store.ExtendLease(ctx, job.JobKey, m.Instance, m.Now())
			}); rerr != nil && certfleet.ErrorCode(rerr) != certfleet.ELEASELOST {
				log.Error("release the job after a store outage", certfleet.LogError, rerr)
			}
			res.Outcome, res.Err = certfleet.OutcomeFailed, err
			return res
		}
		next := m.retryTime(job.Failures+1, err)
		if outage {
			// Not backed off: the job comes back as the CA's next
			// probe, and is made due as soon as the CA answers
			// (caAnswered) if another job's probe finds it first.
			next = probeAt
			if next.IsZero() {
				next = m.Now().Add(outageHold)
			}
			if at, ok := certfleet.RetryAfter(err); ok && at.After(next) {
				next = at
			}
		}
		attempt := certfleet.Attempt{
			JobKey: job.JobKey, Instance: m.Instance, StartedAt: start, FinishedAt: m.Now(),
			Outcome: certfleet.OutcomeFailed, OrderURL: d.orderURL, Error: err.Error(), ProblemType: certfleet.ProblemType(err),
		}
		if ferr := m.save(workCtx, "the failed attempt", log, func(ctx context.Context) error {
			return m.Store.FailJob(ctx, job.JobKey, m.Instance, attempt, next)
		}); ferr != nil {
			log.Error("record failed attempt", certfleet.LogError, ferr)
		}
		level := slog.LevelError
		if outage {
			level = slog.LevelDebug // reported once per outage (caFailed)
		}
		log.Log(cctx, level, "certificate order failed; will retry", certfleet.LogError, err,
			"failures", job.Failures+1, certfleet.LogNextAt, next)
		m.emit(cctx, certfleet.Event{Kind: certfleet.EventOrderFailed, Certificate: job.Spec, KeyType: job.KeyType,
			Reason: certfleet.FailureReason(err), Detail: err.Error()})
		res.Outcome, res.Err, res.NextAt = certfleet.OutcomeFailed, err, next
		return res
	}

	res.Outcome, res.Issuance, res.NextAt = certfleet.OutcomeIssued, &iss, d.next.NextAt
	log.Info("certificate issued", certfleet.LogSerial, certfleet.FormatSerial(iss.Serial), certfleet.LogNotAfter, iss.NotAfter,
		certfleet.LogNextAt, d.next.NextAt, "took", res.Duration.Round(time.Millisecond))
	kind, detail := certfleet.EventIssued, d.reason
	if d.current != nil {
		kind = certfleet.EventRenewed
		detail = fmt.Sprintf("%s; replaces serial %s", d.reason, certfleet.FormatSerial(d.current.Serial))
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

// holdJob puts off a job whose CA is down, without contacting it: it is
// made due again when the CA answers (or after outageHold). The first
// time, it is recorded as a failed attempt (so status and the expiry
// alert see the renewal failing); while it keeps waiting only its time
// moves, so its failure count (and a later backoff) does not grow with
// the outage's length. For a pass (RunOnce) it is a failure, so that
// certfleet issue says the CA is down and exits non-zero.
func (m *Manager) holdJob(ctx context.Context, job certfleet.Job, start time.Time, ca string, log *slog.Logger) Result {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	next := m.Now().Add(outageHold)
	err := m.heldError(ca)
	var serr error
	if job.Failures == 0 {
		serr = m.Store.FailJob(cctx, job.JobKey, m.Instance, certfleet.Attempt{
			JobKey: job.JobKey, Instance: m.Instance, StartedAt: start, FinishedAt: m.Now(),
			Outcome: certfleet.OutcomeFailed, Error: err.Error(),
		}, next)
	} else {
		serr = m.Store.PostponeJob(cctx, job.JobKey, m.Instance, next)
	}
	if serr != nil {
		log.Error("put off a job while its CA is down", certfleet.LogError, serr)
	}
	log.Debug("waiting for the CA", certfleet.LogError, err)
	return Result{Key: job.JobKey, Outcome: certfleet.OutcomeFailed, Err: err, NextAt: next, Duration: m.Now().Sub(start)}
}

// deferJob puts a job off to the time a rate-limit budget (or the CA) named:
// no failure, no backoff. A job that starts waiting is reported once (a
// deferred attempt with the reason, an event, a log line); a job that was
// waiting already and was asked again before its turn keeps its place and
// its report, and only its time moves.
func (m *Manager) deferJob(ctx context.Context, job certfleet.Job, start time.Time, de *certfleet.DeferError, log *slog.Logger) Result {
	now := m.Now()
	until := de.Until
	if !until.After(now) {
		until = now.Add(minIdle) // freed meanwhile: try again at once
	}
	res := Result{Key: job.JobKey, Outcome: certfleet.OutcomeDeferred, Err: de, NextAt: until, Duration: now.Sub(start)}
	if de.Wait != nil && !de.Wait.New {
		if err := m.Store.PostponeJob(ctx, job.JobKey, m.Instance, until); err != nil {
			log.Error("record deferral", certfleet.LogError, err)
		}
		log.Debug("still waiting for a rate-limit budget", "limit", de.Limit, "place", de.Wait.Place, certfleet.LogNextAt, until)
		return res
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
	return res
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
