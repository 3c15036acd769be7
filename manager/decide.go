package manager

// The renewal decision: whether a claimed job needs a certificate now, and
// when to look at it again (renewal window and ARI, after an issuance, after
// a failure).

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

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
	// waiting are the spec's names held back by their self-tests (not in
	// spec.Identifiers, which gate narrowed); retestAt the earliest re-test.
	waiting  []certfleet.WaitingName
	retestAt time.Time
}

// decide works out whether job needs a certificate now, and why.
func (m *Manager) decide(ctx context.Context, job certfleet.Job, mode runMode) (decision, error) {
	var d decision
	spec, err := m.Store.Spec(ctx, job.Spec)
	if err != nil {
		return d, storeError{fmt.Errorf("load spec %q: %w", job.Spec, err)}
	}
	d.spec = spec
	iss, err := m.issuer(ctx, spec)
	if err != nil {
		return d, err
	}
	d.issuer = iss
	if job.CurrentID != 0 {
		cur, err := m.Store.Issuance(ctx, job.CurrentID)
		if err != nil {
			return d, storeError{fmt.Errorf("load current issuance %d: %w", job.CurrentID, err)}
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
	// Changes requested over the API collect for the pack delay before
	// they are ordered (no self-test yet either: it runs once, at the
	// window's end, for every name the window collected).
	if until, ok := m.collecting(job, spec); ok && mode == inDaemon {
		d.deferUntil = &certfleet.ScheduleUpdate{NextAt: until, ARIStart: job.ARIStart, ARIEnd: job.ARIEnd, ARIRetryAt: job.ARIRetryAt}
		d.reason = "collecting requests for the pack delay"
		return d, nil
	}
	// Names that fail their self-test leave the order (selftest.go); the
	// revision compared below is that of the names that may be ordered.
	if err := m.gate(ctx, job, &d); err != nil {
		return d, err
	}
	if d.deferUntil != nil {
		return d, nil
	}
	spec = d.spec
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
	case !job.RenewRequested.IsZero():
		// An operator's forced retry (JobStore.RenewNow; issue 15,
		// finding 6); the issuance clears it. certfleet.RetryOf, which
		// the API answers a retry with, follows these cases.
		d.reason = "renewal requested by an operator"
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
	upd = d.withRetest(upd)
	d.deferUntil = &upd
	d.reason = "renewal not due"
	return d, nil
}

// collecting reports whether job's spec has a change not yet ordered
// whose pack delay is still running, and until when (issue 14: "requests
// for a pack collect for a configurable delay before its order", and a
// burst of changes re-packs once). The window starts at the first change
// not yet ordered (Job.ChangedAt, kept in the store), not the newest, so
// a stream of requests cannot put the order off for ever: what arrives
// after the order is placed waits for the next one. Only certificates
// requested over the API collect: a config file's changes arrive in one
// sync already. An order in flight is resumed at once.
func (m *Manager) collecting(job certfleet.Job, spec certfleet.CertificateSpec) (time.Time, bool) {
	if m.PackDelay <= 0 || job.ChangedAt.IsZero() || job.PendingOrderURL != "" || spec.Source != certfleet.SourceAPI {
		return time.Time{}, false
	}
	until := job.ChangedAt.Add(m.PackDelay)
	return until, until.After(m.Now())
}

// issuer returns the Issuer of spec's account: Issuers first, then
// ResolveIssuer (accounts declared at runtime).
func (m *Manager) issuer(ctx context.Context, spec certfleet.CertificateSpec) (certfleet.Issuer, error) {
	if iss, ok := m.Issuers[spec.AccountName()]; ok {
		return iss, nil
	}
	if m.ResolveIssuer != nil {
		iss, err := m.ResolveIssuer(ctx, spec.AccountName())
		if err == nil {
			return iss, nil
		}
		if certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			return nil, fmt.Errorf("certificate %q: account %q: %w", spec.Name, spec.AccountName(), err)
		}
	}
	return nil, certfleet.ErrNoRetry{Err: certfleet.Errorf(certfleet.EINVALID, "certificate %q uses account %q, which is not configured", spec.Name, spec.AccountName())}
}

// renewalTime returns when the current certificate should be renewed, asking
// the CA's ARI endpoint when it is time to, and the ARI state to keep.
func (m *Manager) renewalTime(ctx context.Context, job certfleet.Job, d decision) (time.Time, certfleet.ScheduleUpdate) {
	now := m.Now()
	upd := certfleet.ScheduleUpdate{ARIStart: job.ARIStart, ARIEnd: job.ARIEnd, ARIRetryAt: job.ARIRetryAt}
	ca := caOf(d.issuer, d.spec)
	if ri, ok := d.issuer.(certfleet.RenewalInfoer); ok && !now.Before(job.ARIRetryAt) && !m.caDown(ca) {
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
			// ARI is advisory: on error keep what we knew and ask again
			// later. A CA known to be down was reported once (caFailed;
			// only orders open the breaker, so that the job which asked
			// is the one whose attempt finds the CA down).
			if certfleet.IsCAOutage(err) && m.caDown(ca) {
				m.Logger.Debug("renewalInfo request failed; using the last known window", certfleet.LogCertificate, job.Spec, certfleet.LogError, err)
			} else {
				m.Logger.Warn("renewalInfo request failed; using the last known window", certfleet.LogCertificate, job.Spec, certfleet.LogError, err)
			}
			upd.ARIRetryAt = now.Add(min(m.ARIInterval, time.Hour))
		}
	}
	var w certfleet.RenewalInfo
	if !upd.ARIStart.IsZero() && !upd.ARIEnd.IsZero() {
		w = certfleet.RenewalInfo{Start: upd.ARIStart, End: upd.ARIEnd}
	}
	return certfleet.PlannedRenewal(d.spec, *d.current, w, now, m.orderDuration(ca)), upd
}

// firstCheck schedules the first look at a new certificate: its renewal
// time without ARI, or sooner when the CA offers ARI (whose window may
// differ).
func (m *Manager) firstCheck(d decision, iss certfleet.Issuance, now time.Time) certfleet.ScheduleUpdate {
	at := certfleet.PlannedRenewal(d.spec, iss, certfleet.RenewalInfo{}, now, m.orderDuration(caOf(d.issuer, d.spec)))
	if _, ok := d.issuer.(certfleet.RenewalInfoer); ok {
		if check := now.Add(m.ARIInterval); check.Before(at) {
			at = check
		}
	}
	return d.withRetest(certfleet.ScheduleUpdate{NextAt: at})
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
