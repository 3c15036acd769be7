package manager

// The self-test gate (issue 14): before an order for names not yet proven
// (first issuance, names new to the certificate, after a failed attempt),
// each is tested the way the CA would see it (Manager.SelfTester). A name
// that fails is "waiting": it is left out of the order (its pack is issued
// without it), re-tested on its own backoff, and joins again when it
// passes. No order is placed while every name waits.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// gate runs the self-tests a decision needs and narrows d.spec to the
// names that may be ordered. When every name waits it sets d.deferUntil to
// the earliest re-test. A tester or store failure is logged and the
// decision left as it was: the gate only ever holds names back on a
// failed test, never because it could not test. When ctx ends it returns
// its error, so that no order is placed during a shutdown.
func (m *Manager) gate(ctx context.Context, job certfleet.Job, d *decision) error {
	if m.SelfTester == nil || d.spec.NoSelfTest || job.PendingOrderURL != "" {
		return nil
	}
	log := m.Logger.With(certfleet.LogCertificate, job.Spec, certfleet.LogKeyType, string(job.KeyType))
	covered := map[certfleet.Identifier]bool{}
	if d.current != nil && job.Failures == 0 {
		// Proven by the certificate in use: renewing it needs no test.
		for _, id := range d.current.Identifiers {
			covered[id] = true
		}
	}
	var candidates []certfleet.Identifier
	for _, id := range d.spec.Identifiers {
		if !covered[id] {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	stored, err := m.Store.WaitingNames(ctx, certfleet.WaitingFilter{Spec: d.spec.Name})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("cannot read waiting names; ordering without self-tests", certfleet.LogError, err)
		return nil
	}
	now := m.Now()
	prev := make(map[certfleet.Identifier]certfleet.WaitingName, len(stored))
	var gone []certfleet.Identifier // waiting rows of names the spec no longer has
	for _, w := range stored {
		if !slices.Contains(d.spec.Identifiers, w.Identifier) {
			gone = append(gone, w.Identifier)
			continue
		}
		prev[w.Identifier] = w
	}
	var (
		toTest  []certfleet.Identifier
		waiting []certfleet.WaitingName // still waiting, tested now or not yet due
		changed []certfleet.WaitingName // rows to write
		ready   = gone
	)
	for _, id := range candidates {
		if w, ok := prev[id]; ok && w.NextAt.After(now) && w.Challenge == d.spec.Challenge {
			waiting = append(waiting, w) // its re-test is not due: no test, no write
			continue
		}
		toTest = append(toTest, id)
	}
	if len(toTest) > 0 {
		results, err := m.SelfTester.SelfTest(ctx, d.spec, toTest)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || len(results) != len(toTest) {
			log.Warn("self-test could not run; ordering without it", certfleet.LogError, err)
			return nil
		}
		for _, r := range results {
			w, was := prev[r.Identifier]
			if r.OK() {
				if was {
					ready = append(ready, r.Identifier)
					log.Info("waiting name passed its self-test; it joins the order", certfleet.LogIdentifier, r.Identifier.Value,
						"waited", now.Sub(w.Since).Round(time.Second))
					m.emit(ctx, certfleet.Event{Kind: certfleet.EventReady, Certificate: job.Spec, KeyType: job.KeyType,
						Detail: fmt.Sprintf("%s passed its %s self-test after waiting %s", r.Identifier.Value, d.spec.Challenge, now.Sub(w.Since).Round(time.Second))})
				}
				continue
			}
			if !was || w.Challenge != d.spec.Challenge {
				w = certfleet.WaitingName{Spec: d.spec.Name, Identifier: r.Identifier, Since: now}
			}
			first := w.Tests == 0
			w.Challenge, w.Code, w.Reason, w.CheckedAt, w.Tenant = d.spec.Challenge, r.Code, r.Reason, now, d.spec.Tenant
			w.Tests++
			w.NextAt = now.Add(certfleet.RetestDelay(w.Tests, m.RetestMin, m.RetestMax))
			waiting = append(waiting, w)
			changed = append(changed, w)
			if first {
				log.Warn("name waits: its self-test failed, so no order is placed for it", certfleet.LogIdentifier, r.Identifier.Value,
					"reason", r.Reason, "retest_at", w.NextAt)
				m.emit(ctx, certfleet.Event{Kind: certfleet.EventWaiting, Certificate: job.Spec, KeyType: job.KeyType,
					Reason: r.Code, Detail: r.Reason})
			} else {
				log.Debug("name still waiting", certfleet.LogIdentifier, r.Identifier.Value, "tests", w.Tests, "retest_at", w.NextAt)
			}
		}
	}
	if err := m.Store.SetWaiting(ctx, d.spec.Name, changed, ready); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Error("record self-test results", certfleet.LogError, err)
	}
	if len(waiting) == 0 {
		return nil
	}
	held := make(map[certfleet.Identifier]bool, len(waiting))
	var reasons []string
	for _, w := range waiting {
		held[w.Identifier] = true
		if d.retestAt.IsZero() || w.NextAt.Before(d.retestAt) {
			d.retestAt = w.NextAt
		}
		reasons = append(reasons, w.Reason)
	}
	d.waiting = waiting
	d.spec.Identifiers = slices.DeleteFunc(slices.Clone(d.spec.Identifiers), func(id certfleet.Identifier) bool { return held[id] })
	if len(d.spec.Identifiers) == 0 {
		d.deferUntil = &certfleet.ScheduleUpdate{NextAt: d.retestAt, ARIStart: job.ARIStart, ARIEnd: job.ARIEnd, ARIRetryAt: job.ARIRetryAt}
		d.reason = "waiting for self-tests: " + strings.Join(reasons, "; ")
	}
	return nil
}

// withRetest moves a schedule's next look forward to the earliest re-test
// of a waiting name, so a name that becomes ready joins within one re-test
// interval.
func (d *decision) withRetest(u certfleet.ScheduleUpdate) certfleet.ScheduleUpdate {
	if !d.retestAt.IsZero() && d.retestAt.Before(u.NextAt) {
		u.NextAt = d.retestAt
	}
	return u
}
