package manager

// The CA-level circuit breaker (issue 16): when a CA is down, its work is
// paused as a whole instead of every job backing off on its own, the
// outage is logged once when it starts and once when it ends, and the
// paused work resumes within seconds of the CA answering again.

import (
	"context"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Circuit-breaker timing, ours. A probe is one job's real attempt, let
// through while the others wait: the first a second after the outage was
// seen, then doubling to outageProbeMax. Five seconds keeps the time from
// the CA's return to work resuming within seconds while costing a CA that
// stays down one attempt (acmez: up to 3 requests) per 5 s. Waiting jobs
// are put off by outageHold, and made due at once when a probe succeeds;
// the hold only bounds how long another instance's waiting work (or ours,
// if this process dies) waits without it.
const (
	outageProbeMin = time.Second
	outageProbeMax = 5 * time.Second
	outageHold     = time.Minute
)

// outages is the breaker's state: one entry per CA that is down.
type outages struct {
	mu  sync.Mutex
	cas map[string]*outage // guarded by mu
}

// outage is one CA being down, as this instance saw it.
type outage struct {
	since    time.Time
	firstErr string
	failed   int // attempts (and renewalInfo requests) that failed with it
	held     int // times a job was put off without contacting the CA
	probes   int
	interval time.Duration
	probeAt  time.Time
	probing  bool
	waiting  map[certfleet.JobKey]bool // jobs to make due when it ends
}

// caOf names the CA an issuer orders from: its certfleet.CANamer name, or
// the account's name for issuers without one.
func caOf(iss certfleet.Issuer, spec certfleet.CertificateSpec) string {
	if n, ok := iss.(certfleet.CANamer); ok {
		return n.CA()
	}
	return "account " + spec.AccountName()
}

// caDown reports whether ca is known to be down.
func (m *Manager) caDown(ca string) bool {
	m.outages.mu.Lock()
	defer m.outages.mu.Unlock()
	return m.outages.cas[ca] != nil
}

// caGate decides whether job may contact ca now: yes when the CA is not
// known to be down, or as the outage's next probe; otherwise the job is
// to wait (hold), and is made due again when the outage ends.
func (m *Manager) caGate(ca string, key certfleet.JobKey) (probe, hold bool) {
	m.outages.mu.Lock()
	defer m.outages.mu.Unlock()
	o := m.outages.cas[ca]
	if o == nil {
		return false, false
	}
	if !o.probing && !m.Now().Before(o.probeAt) {
		o.probing = true
		o.probes++
		return true, false
	}
	o.held++
	o.waiting[key] = true
	return false, true
}

// caFailed records an attempt (key: the job; zero for a renewalInfo
// request) that failed because ca was down, opening the breaker when it
// was closed: that is the one line that says the outage started. It
// returns when the next probe is due: the failed job is rescheduled to
// it, so there is always a job to probe with.
func (m *Manager) caFailed(ca string, key certfleet.JobKey, probe bool, err error) time.Time {
	m.outages.mu.Lock()
	defer m.outages.mu.Unlock()
	now := m.Now()
	o := m.outages.cas[ca]
	if o == nil {
		if m.outages.cas == nil {
			m.outages.cas = make(map[string]*outage)
		}
		o = &outage{since: now, firstErr: err.Error(), interval: outageProbeMin, probeAt: now.Add(outageProbeMin),
			waiting: make(map[certfleet.JobKey]bool)}
		m.outages.cas[ca] = o
		m.Logger.Warn("the CA is down; its orders wait until it answers again (one probe at a time)", certfleet.LogCA, ca,
			certfleet.LogError, err)
	}
	o.failed++
	if key != (certfleet.JobKey{}) {
		o.waiting[key] = true
	}
	if probe {
		o.probing = false
		o.interval = min(2*o.interval, outageProbeMax)
		o.probeAt = now.Add(o.interval)
	}
	if at, ok := certfleet.RetryAfter(err); ok && at.After(o.probeAt) {
		o.probeAt = at // the CA said when to come back: no probe before
	}
	return o.probeAt
}

// caAnswered records that ca answered job's attempt started at started
// (an issuance, or a problem document it sent): when it was down, the
// outage ends with one line and counts, and the other work waiting for it
// is made due at once. An attempt that started before the outage was seen
// (its answers may all have come before the CA went away) ends nothing.
func (m *Manager) caAnswered(ctx context.Context, ca string, job certfleet.JobKey, started time.Time) {
	m.outages.mu.Lock()
	o := m.outages.cas[ca]
	if o != nil && started.Before(o.since) {
		o = nil
	} else if o != nil {
		delete(m.outages.cas, ca)
	}
	m.outages.mu.Unlock()
	if o == nil {
		return
	}
	m.Logger.Warn("the CA answers again; resuming its orders", certfleet.LogCA, ca,
		"down_for", m.Now().Sub(o.since).Round(time.Second), "failed_attempts", o.failed, "jobs_waiting", len(o.waiting),
		"jobs_held", o.held, "probes", o.probes, "first_error", o.firstErr)
	delete(o.waiting, job)
	for key := range o.waiting {
		if err := m.Store.RetryNow(ctx, key); err != nil && certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			m.Logger.Error("make a job that waited for its CA due", certfleet.LogCertificate, key.Spec,
				certfleet.LogKeyType, string(key.KeyType), certfleet.LogError, err)
		}
	}
	m.Wake()
}

// probeEnded frees the probe slot of an attempt that neither reached the
// CA nor found it down (e.g. Prepare failed, or the order was deferred by
// a budget), so the next job probes.
func (m *Manager) probeEnded(ca string) {
	m.outages.mu.Lock()
	defer m.outages.mu.Unlock()
	if o := m.outages.cas[ca]; o != nil {
		o.probing = false
	}
}

// outageError is the error of a job held while its CA is down.
type outageError struct {
	ca    string
	since time.Time
}

func (e *outageError) Error() string {
	return "waiting for the CA " + e.ca + ", down since " + e.since.UTC().Format(time.RFC3339) + "; the order is placed as soon as it answers"
}

func (e *outageError) CAOutage() bool { return true }

// heldError returns the error of a job gate held.
func (m *Manager) heldError(ca string) error {
	m.outages.mu.Lock()
	defer m.outages.mu.Unlock()
	e := &outageError{ca: ca, since: m.Now()}
	if o := m.outages.cas[ca]; o != nil {
		e.since = o.since
	}
	return e
}
