// Package alert tells operators when certificates are in danger: a
// certificate close to expiry whose renewal keeps failing (or that has
// expired), and an agent or endpoint still on an old certificate well after
// the new one was issued.
//
// An Evaluator looks at the store every Settings.Interval (a full round),
// and soon after an event says something relevant happened (it is a
// certfleet.EventSink): an event about one certificate looks at that
// certificate alone, since every condition is about one certificate (its
// expiry and renewal, its files, its agents' and endpoints' copies), so
// declaring or issuing names at a high rate costs each name a few indexed
// reads, not a round over every certificate (issue 13).
// Each condition it finds is an incident, kept in the store
// (certfleet.IncidentStore), so that it survives restarts and is shared by
// every instance on one database. Notifiers (a webhook, a command) are told
// once when an incident opens, once each time its severity rises
// (warning → critical → expired), and once when it clears. Whether an
// instance may send a notification is decided by a conditional update in
// the store, so several instances send each notification once; a delivery
// that fails stays owed and is tried again next round.
//
// See docs/alerts.md for the conditions, severities, payload and command
// contract.
package alert

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

// Defaults of Settings, with their reasons.
const (
	// DefaultInterval is how often the store is looked at when no event
	// wakes the evaluator earlier: expiry creeps up by the minute.
	DefaultInterval = time.Minute
	// MaxExpiryWarning caps the automatic warning window: a third of the
	// lifetime (30 days of 90) would warn while renewal still has weeks to
	// succeed; two weeks of failures is worth a page.
	MaxExpiryWarning = 14 * 24 * time.Hour
	// MaxStaleGrace caps the automatic grace period of agents and
	// endpoints: a day is plenty to deploy and reload.
	MaxStaleGrace = 24 * time.Hour
	// DefaultClaim is how long an instance may take to deliver one
	// notification (all notifiers, with their retries) before another
	// instance may try: notifiers are cut off well before it ends.
	DefaultClaim = 5 * time.Minute
	// minRoundGap bounds the rate of rounds woken by events.
	minRoundGap = time.Second
	// maxFailuresPerRound ends a round's deliveries after this many in a
	// row failed: a receiver that is down would otherwise cost every owed
	// notification its full timeouts and retries, each round.
	maxFailuresPerRound = 3
)

// Settings are the thresholds of the conditions. Zero fields are automatic,
// from each certificate's lifetime (NotAfter - NotBefore).
type Settings struct {
	// Interval between rounds. Default DefaultInterval.
	Interval time.Duration
	// ExpiryWarning: a certificate this close to expiry whose renewal is
	// failing is an incident of severity warning. Automatic: a third of
	// the lifetime, at most MaxExpiryWarning.
	ExpiryWarning time.Duration
	// ExpiryCritical: this close to expiry, it is critical. Automatic: a
	// tenth of the lifetime, at most half the warning window.
	ExpiryCritical time.Duration
	// StaleGrace: an agent or endpoint may keep an old certificate this
	// long after its replacement was issued. Automatic: a tenth of the
	// lifetime, at most MaxStaleGrace.
	StaleGrace time.Duration
}

// Warning returns the warning window for a certificate of lifetime life.
func (s Settings) Warning(life time.Duration) time.Duration {
	if s.ExpiryWarning > 0 {
		return s.ExpiryWarning
	}
	return min(life/3, MaxExpiryWarning)
}

// Critical returns the critical window for a certificate of lifetime life.
func (s Settings) Critical(life time.Duration) time.Duration {
	if s.ExpiryCritical > 0 {
		return s.ExpiryCritical
	}
	return min(life/10, s.Warning(life)/2)
}

// Grace returns how long an agent or endpoint may keep a replaced
// certificate of lifetime life.
func (s Settings) Grace(life time.Duration) time.Duration {
	if s.StaleGrace > 0 {
		return s.StaleGrace
	}
	return min(life/10, MaxStaleGrace)
}

// EndpointObservation is the latest check of one endpoint (package
// endpoint's verdict, reduced to what alerts need).
type EndpointObservation struct {
	Certificate string
	// Endpoint names it as people read it ("tls lb1.example.org:443").
	Endpoint string
	// Status is the verdict's (endpoint.Status: ok, expiring, expired,
	// stale, mismatch, unknown), or "error" when the check itself failed;
	// "" when it was never checked.
	Status string
	// Message is the verdict's one line for people.
	Message string
	// ServedSerial, ServedNotAfter and ServedIssuance (the archive ID, 0
	// when not ours) describe the certificate served.
	ServedSerial   string
	ServedNotAfter time.Time
	ServedIssuance int64
	// CheckedAt is when the check ran (zero: not yet).
	CheckedAt time.Time
}

// EndpointSource gives the latest observation of every configured
// endpoint (never-checked ones with a zero CheckedAt). Endpoint checks are
// made by each instance for itself and kept in memory: the daemon
// package's endpoint watcher implements it.
type EndpointSource interface {
	EndpointObservations() []EndpointObservation
}

// Evaluator finds incidents and delivers their notifications. Set the
// fields, then call Run (daemon) or Round (one pass). Fields must not change
// after the first call.
type Evaluator struct {
	// Store is required.
	Store certfleet.Store
	// Settings are the thresholds.
	Settings Settings
	// Endpoints, if set, supplies endpoint observations; without it
	// endpoint incidents are neither opened nor resolved here.
	Endpoints EndpointSource
	// Notifiers are told about every transition; with none, incidents are
	// kept (and shown by status) but nothing is sent.
	Notifiers []Notifier
	// Instance names this evaluator as the claimant of notifications; it
	// must differ between instances. Required.
	Instance string
	// Claim is how long a notification claim lasts. Default DefaultClaim.
	Claim time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives log records; nil discards them.
	Logger *slog.Logger

	once sync.Once
	wake chan struct{}

	dueMu sync.Mutex // guards dueAll, dueCerts
	// dueAll: the next round woken is a full round (Wake, an event not
	// about one certificate, or too many certificates named).
	dueAll bool
	// dueCerts are the certificates events named since the last round:
	// the next round woken looks at them alone.
	dueCerts map[string]bool

	cacheMu sync.Mutex // guards archives
	// archives are the lineages' archives the last round read (stale
	// agents and endpoints), by lineage, as of the current issuance: a
	// lineage's archive changes only when a new issuance becomes current.
	archives map[certfleet.JobKey]archived
}

// archived is a lineage's archive as of its current issuance.
type archived struct {
	current int64
	list    []certfleet.Issuance
}

func (e *Evaluator) init() {
	e.once.Do(func() {
		if e.Settings.Interval <= 0 {
			e.Settings.Interval = DefaultInterval
		}
		if e.Claim <= 0 {
			e.Claim = DefaultClaim
		}
		if e.Now == nil {
			e.Now = time.Now
		}
		if e.Logger == nil {
			e.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		e.wake = make(chan struct{}, 1)
	})
}

// wakingEvents are the event kinds after which a condition may have
// changed.
var wakingEvents = map[string]bool{
	certfleet.EventIssued: true, certfleet.EventRenewed: true, certfleet.EventOrderFailed: true,
	certfleet.EventDeployed: true, certfleet.EventDeployFailed: true, certfleet.EventAgentReport: true,
	certfleet.EventConfigChanged: true, certfleet.EventSpecChanged: true, certfleet.EventRevoked: true,
	certfleet.EventDeferred: true,
}

// maxDueCerts bounds the certificates a woken round looks at one by one
// (a few indexed reads each); beyond it the round is a full one, which
// reads the store a page at a time and costs about as much.
const maxDueCerts = 2000

// RecordEvent implements certfleet.EventSink: an event that may change a
// condition wakes Run, for a round over the event's certificate (a full
// round when it names none). It never blocks and never fails.
func (e *Evaluator) RecordEvent(_ context.Context, ev certfleet.Event) error {
	if !wakingEvents[ev.Kind] {
		return nil
	}
	if ev.Certificate == "" {
		e.Wake()
		return nil
	}
	e.init()
	e.dueMu.Lock()
	if !e.dueAll {
		if e.dueCerts == nil {
			e.dueCerts = make(map[string]bool)
		}
		e.dueCerts[ev.Certificate] = true
		if len(e.dueCerts) > maxDueCerts {
			e.dueAll, e.dueCerts = true, nil
		}
	}
	e.dueMu.Unlock()
	e.signal()
	return nil
}

// Wake makes Run start a full round soon. It never blocks.
func (e *Evaluator) Wake() {
	e.init()
	e.dueMu.Lock()
	e.dueAll, e.dueCerts = true, nil
	e.dueMu.Unlock()
	e.signal()
}

func (e *Evaluator) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// takeDue returns what the next woken round looks at (all, or the
// certificates named) and clears it.
func (e *Evaluator) takeDue() (all bool, certs map[string]bool) {
	e.dueMu.Lock()
	defer e.dueMu.Unlock()
	all, certs = e.dueAll, e.dueCerts
	e.dueAll, e.dueCerts = false, nil
	return all, certs
}

// Report counts what a round did.
type Report struct {
	Opened, Updated, Resolved int // incidents
	Sent, Failed              int // notifications
}

// Run runs rounds until ctx ends: a full round every Settings.Interval
// (conditions change with time alone: expiry comes closer, grace periods
// end) and after Wake; after events about certificates, a round over
// those certificates alone. Errors are logged and the next round tries
// again.
func (e *Evaluator) Run(ctx context.Context) error {
	e.init()
	if e.Instance == "" {
		return errors.New("alert: Evaluator.Instance is required")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastFull := time.Now()
	for {
		full := false
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			full = true
		case <-e.wake:
		}
		all, certs := e.takeDue()
		// A wake that comes with the interval over is a full round too:
		// the timer is reset below only after a full one.
		full = full || all || time.Since(lastFull) >= e.Settings.Interval
		start := time.Now()
		var err error
		if full {
			lastFull = start
			_, err = e.Round(ctx)
		} else if len(certs) > 0 {
			_, err = e.roundOf(ctx, certs)
		}
		if err != nil && ctx.Err() == nil {
			e.Logger.Error("alert round failed; trying again next round", certfleet.LogError, err)
		}
		// Events may come in bursts: never more than one round a second.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(minRoundGap - time.Since(start)):
		}
		if full {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(e.Settings.Interval)
		}
	}
}

// Round evaluates the conditions and then delivers what is owed.
func (e *Evaluator) Round(ctx context.Context) (Report, error) {
	return e.roundOf(ctx, nil)
}

// roundOf is Round over the certificates certs (nil: all).
func (e *Evaluator) roundOf(ctx context.Context, certs map[string]bool) (Report, error) {
	e.init()
	if e.Instance == "" {
		return Report{}, errors.New("alert: Evaluator.Instance is required")
	}
	rep, err := e.evaluate(ctx, certs)
	if err != nil {
		return rep, err
	}
	sent, failed, err := e.Deliver(ctx)
	rep.Sent, rep.Failed = sent, failed
	return rep, err
}

// Deliver sends every notification owed (oldest incident first) that this
// instance wins the claim of, and returns how many were sent and how many
// failed (those stay owed). After maxFailuresPerRound failures in a row it
// leaves the rest for the next round.
func (e *Evaluator) Deliver(ctx context.Context) (sent, failed int, err error) {
	e.init()
	if len(e.Notifiers) == 0 {
		return 0, 0, nil
	}
	owed, err := e.Store.Incidents(ctx, certfleet.IncidentFilter{Pending: true, Limit: 1000})
	if err != nil {
		return 0, 0, fmt.Errorf("list incidents owed a notification: %w", err)
	}
	inARow := 0
	for k := len(owed) - 1; k >= 0; k-- {
		if ctx.Err() != nil {
			return sent, failed, ctx.Err()
		}
		if inARow >= maxFailuresPerRound {
			e.Logger.Warn("alert deliveries keep failing; the rest wait for the next round", "owed", k+1)
			break
		}
		ok, err := e.deliver(ctx, owed[k].ID)
		if err != nil {
			return sent, failed, err
		}
		switch {
		case ok == nil:
		case *ok:
			sent++
			inARow = 0
		default:
			failed++
			inARow++
		}
	}
	return sent, failed, nil
}

// deliver claims and sends incident id's notification. It returns nil when
// the claim went elsewhere, else whether the delivery succeeded; err is a
// store failure.
func (e *Evaluator) deliver(ctx context.Context, id int64) (*bool, error) {
	now := e.Now()
	inc, won, err := e.Store.ClaimNotification(ctx, id, e.Instance, now, now.Add(e.Claim))
	if err != nil {
		return nil, fmt.Errorf("claim the notification of incident %d: %w", id, err)
	}
	if !won {
		return nil, nil
	}
	state, ok := inc.Pending()
	if !ok { // cannot happen: the claim's condition is that one is owed
		return nil, e.Store.ReleaseNotification(ctx, id, e.Instance, "")
	}
	n := newNotification(inc, state, e.Instance, now)
	// Notifiers must finish while the claim is ours, and the outcome is
	// recorded by the claim's end: even after ctx ended (shutdown), but
	// never waiting on a store that does not answer past the point where
	// another instance may take the claim anyway.
	claimEnd := time.Now().Add(e.Claim)
	rctx, rcancel := context.WithDeadline(context.WithoutCancel(ctx), claimEnd)
	defer rcancel()
	sctx, cancel := context.WithTimeout(ctx, e.Claim*4/5)
	var errs []error
	for _, nt := range e.Notifiers {
		if err := nt.Notify(sctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	cancel()
	log := e.Logger.With("incident", inc, "state", state)
	if err := errors.Join(errs...); err != nil {
		failed := false
		log.Error("alert notification failed; it stays owed and is tried again next round",
			"attempts", inc.DeliveryAttempts+1, certfleet.LogError, err)
		if rerr := e.Store.ReleaseNotification(rctx, id, e.Instance, err.Error()); rerr != nil {
			return &failed, fmt.Errorf("release the notification claim of incident %d: %w", id, rerr)
		}
		return &failed, nil
	}
	done := true
	if err := e.Store.CompleteNotification(rctx, id, e.Instance, state, inc.Severity, now); err != nil {
		return &done, fmt.Errorf("record the notification of incident %d: %w", id, err)
	}
	log.Info("alert notification sent", "delivery", n.DeliveryID)
	return &done, nil
}
