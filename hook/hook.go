// Package hook tells the operator's own systems what happens to
// certificates: issued, renewed, failed, waiting, deployed, revoked and
// expiring events (certfleet.HookTypes), sent to an HTTP webhook (signed
// with HMAC-SHA256), a UNIX socket (newline-delimited JSON) or a command
// (argv, JSON on stdin, no shell). docs/events.md is the receivers'
// contract.
//
// It builds on the audit trail rather than beside it: an event is a
// certfleet.Event, and a Recorder (a certfleet.EventSink) writes it to the
// audit trail together with one delivery per hook that wants it, in one
// transaction (certfleet.DeliveryStore). A Dispatcher drains those
// deliveries: it claims each in the store before sending it, as the alert
// notifications are claimed, so several instances on one database send
// each event once; a delivery that fails stays owed, across restarts, and
// is tried again with a doubling backoff. Every attempt carries the same
// idempotency key, so a receiver can drop a repeat (one is possible only
// when certfleet dies between a receiver's acceptance and its record of
// it).
//
// It does not decide what happened (the manager, the API and the alert
// evaluator record events), nor alert anyone about incidents (package
// alert), nor write certificates anywhere (package deploy, package export).
package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Payload is what a hook receives for one event: the webhook's body, one
// line on a socket, a command's stdin (docs/events.md).
type Payload struct {
	// Key is the idempotency key: the same for every attempt (also the
	// webhook's Idempotency-Key header). Receivers drop a key they saw.
	Key string `json:"key"`
	// Type is the event's type, one of certfleet.HookTypes.
	Type string `json:"type"`
	// Event is the audit event, as certfleet audit shows it.
	Event certfleet.Event `json:"event"`
	// Issuance is the certificate the event names (Event.IssuanceID),
	// without its private key; nil when it names none.
	Issuance *Issuance `json:"issuance,omitempty"`
}

// Issuance is a certificate as hooks see it: public parts only.
type Issuance struct {
	ID          int64             `json:"id"`
	Certificate string            `json:"certificate"`
	KeyType     certfleet.KeyType `json:"key_type"`
	Serial      string            `json:"serial"`
	Fingerprint string            `json:"fingerprint"`
	Identifiers []string          `json:"identifiers"`
	NotBefore   time.Time         `json:"not_before"`
	NotAfter    time.Time         `json:"not_after"`
	// ChainPEM is the leaf followed by the intermediates (fullchain.pem).
	ChainPEM string `json:"chain_pem"`
}

// Sender delivers payloads to one receiver. Send returns nil only when the
// receiver took p (body is its JSON form); it must respect ctx's deadline.
// Sends of one Sender never overlap. A Sender that holds a connection also
// implements io.Closer.
type Sender interface {
	Send(ctx context.Context, p Payload, body []byte) error
}

// Hook is one receiver and the events it wants.
type Hook struct {
	// Name identifies the hook's deliveries in the store (see
	// certfleet.ValidateHookName).
	Name string
	// Types are the event types it wants (certfleet.HookTypes); nil means
	// every type.
	Types []string
	// Certificates are shell patterns (path.Match) of the certificate
	// names it wants; nil means every certificate.
	Certificates []string
	// Sender sends to it (the Dispatcher's; a Recorder needs none).
	Sender Sender
}

// Wants reports whether h wants event e.
func (h Hook) Wants(e certfleet.Event) bool {
	typ := certfleet.HookType(e.Kind)
	if typ == "" || h.Types != nil && !slices.Contains(h.Types, typ) {
		return false
	}
	if h.Certificates == nil {
		return true
	}
	for _, p := range h.Certificates {
		if ok, _ := path.Match(p, e.Certificate); ok && e.Certificate != "" {
			return true
		}
	}
	return false
}

// Store is what hooks need of the store: the outbox, and the archive for
// the certificate an event names.
type Store interface {
	certfleet.AuditStore
	certfleet.DeliveryStore
	certfleet.ArchiveStore
}

// Recorder is the certfleet.EventSink that writes events to the audit
// trail, each owed to the hooks that want it in the same transaction. Put
// it where the store's audit trail would be (first among the sinks).
type Recorder struct {
	Store Store
	Hooks []Hook
	// Wake, if set, is called after an event owed to a hook was recorded
	// (Dispatcher.Wake).
	Wake func()
}

var _ certfleet.EventSink = (*Recorder)(nil)

// RecordEvent implements certfleet.EventSink: Record without a key.
func (r *Recorder) RecordEvent(ctx context.Context, e certfleet.Event) error {
	_, err := r.Record(ctx, e, "")
	return err
}

// Record records e in the audit trail, owed to the hooks that want it.
// With a key (an alert notification's delivery ID) the event is recorded
// only if some hook wants it, and only once per key: the caller may be
// retried. It reports whether e was recorded.
func (r *Recorder) Record(ctx context.Context, e certfleet.Event, key string) (bool, error) {
	var names []string
	for _, h := range r.Hooks {
		if h.Wants(e) {
			names = append(names, h.Name)
		}
	}
	switch {
	case len(names) == 0 && key != "":
		return false, nil
	case len(names) == 0:
		return true, r.Store.RecordEvent(ctx, e)
	}
	_, recorded, err := r.Store.RecordOwedEvent(ctx, e, key, names)
	if err == nil && recorded && r.Wake != nil {
		r.Wake()
	}
	return recorded, err
}

// Defaults of Dispatcher, with their reasons.
const (
	// DefaultInterval is how often the store is looked at without a wake:
	// it finds events other processes recorded (certfleet compromise,
	// another instance) and retries that came due.
	DefaultInterval = 10 * time.Second
	// DefaultMinBackoff is the wait after a first failure, doubling after
	// each further one up to DefaultMaxBackoff: a receiver restarting is
	// back within seconds, one that is down for hours is asked twice an
	// hour, not every few seconds.
	DefaultMinBackoff = 5 * time.Second
	DefaultMaxBackoff = 30 * time.Minute
	// DefaultClaim is how long an instance may take to send one delivery
	// before another may try: senders are cut off at four fifths of it.
	DefaultClaim = 2 * time.Minute
	// pageSize is how many owed deliveries a round reads at once.
	pageSize = 100
)

// Dispatcher sends the deliveries the store owes to each hook. Set the
// fields, then call Run (serve) or Round (one pass). Fields must not
// change after the first call.
type Dispatcher struct {
	Store Store
	Hooks []Hook
	// Instance names this dispatcher as the claimant of deliveries; it
	// must differ between instances. Required.
	Instance string
	// Interval between looks at the store. Default DefaultInterval.
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait before a failed delivery is
	// tried again. Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Claim is how long a delivery claim lasts. Default DefaultClaim.
	Claim time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives log records; nil discards them.
	Logger *slog.Logger

	once  sync.Once
	wakes []chan struct{} // one per hook
	locks []sync.Mutex    // one per hook: its sends never overlap
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Interval <= 0 {
			d.Interval = DefaultInterval
		}
		if d.MinBackoff <= 0 {
			d.MinBackoff = DefaultMinBackoff
		}
		if d.MaxBackoff < d.MinBackoff {
			d.MaxBackoff = max(DefaultMaxBackoff, d.MinBackoff)
		}
		if d.Claim <= 0 {
			d.Claim = DefaultClaim
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Logger == nil {
			d.Logger = slog.New(slog.DiscardHandler)
		}
		d.wakes = make([]chan struct{}, len(d.Hooks))
		for i := range d.wakes {
			d.wakes[i] = make(chan struct{}, 1)
		}
		d.locks = make([]sync.Mutex, len(d.Hooks))
	})
}

// Wake makes Run look at the store soon, for every hook. It never blocks.
func (d *Dispatcher) Wake() {
	d.init()
	for _, w := range d.wakes {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Report counts what a round did.
type Report struct {
	Sent, Failed int
}

// Run sends what is owed to each hook, each in its own goroutine (a slow
// receiver holds up no other), until ctx ends; then it closes the senders.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	if d.Instance == "" {
		return errors.New("hook: Dispatcher.Instance is required")
	}
	var wg sync.WaitGroup
	for i := range d.Hooks {
		wg.Go(func() { d.run(ctx, i) })
	}
	wg.Wait()
	return d.Close()
}

// Close closes the senders that hold connections.
func (d *Dispatcher) Close() error {
	var errs []error
	for _, h := range d.Hooks {
		if c, ok := h.Sender.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) run(ctx context.Context, i int) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-d.wakes[i]:
			timer.Stop()
		}
		wait := d.Interval
		rep, retryIn, more, err := d.deliver(ctx, i)
		switch {
		case err != nil && ctx.Err() == nil:
			d.Logger.Error("event deliveries: the store failed; trying again later", "hook", d.Hooks[i].Name, certfleet.LogError, err)
		case more && rep.Failed == 0:
			wait = 0 // a full page went out: read the next at once
		case retryIn > 0:
			wait = min(wait, retryIn)
		}
		timer.Reset(wait)
	}
}

// Round sends what is owed to every hook, one after another (certfleet
// issue, tests), and returns the totals; the first store error ends it.
func (d *Dispatcher) Round(ctx context.Context) (Report, error) {
	d.init()
	if d.Instance == "" {
		return Report{}, errors.New("hook: Dispatcher.Instance is required")
	}
	var total Report
	for i := range d.Hooks {
		for {
			rep, _, more, err := d.deliver(ctx, i)
			total.Sent += rep.Sent
			total.Failed += rep.Failed
			if err != nil {
				return total, err
			}
			if !more || rep.Failed > 0 {
				break
			}
		}
	}
	return total, nil
}

// deliver sends one page of hook i's due deliveries, oldest event first.
// The first failure ends it (the receiver is likely down: the rest wait
// for the next round and keep their order). retryIn is when the failed
// delivery is due again; more says the page was full.
func (d *Dispatcher) deliver(ctx context.Context, i int) (rep Report, retryIn time.Duration, more bool, err error) {
	d.locks[i].Lock()
	defer d.locks[i].Unlock()
	h := d.Hooks[i]
	owed, err := d.Store.Deliveries(ctx, certfleet.DeliveryFilter{Hook: h.Name, OwedOnly: true, DueBy: d.Now(), Limit: pageSize})
	if err != nil {
		return rep, 0, false, fmt.Errorf("hook %s: list owed deliveries: %w", h.Name, err)
	}
	for _, o := range owed {
		if ctx.Err() != nil {
			return rep, 0, false, nil
		}
		ok, next, err := d.send(ctx, h, o.ID)
		if err != nil {
			return rep, 0, false, err
		}
		switch {
		case ok == nil: // another instance has it
		case *ok:
			rep.Sent++
		default:
			rep.Failed++
			return rep, next.Sub(d.Now()), false, nil
		}
	}
	return rep, 0, len(owed) == pageSize, nil
}

// send claims delivery id and sends it to h. It returns nil when the claim
// went elsewhere, else whether the delivery succeeded and, if not, when it
// is due again; err is a store failure.
func (d *Dispatcher) send(ctx context.Context, h Hook, id int64) (ok *bool, next time.Time, err error) {
	now := d.Now()
	del, won, err := d.Store.ClaimDelivery(ctx, id, d.Instance, now, now.Add(d.Claim))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("hook %s: claim delivery %d: %w", h.Name, id, err)
	}
	if !won {
		return nil, time.Time{}, nil
	}
	// The outcome is recorded by the claim's end, even after ctx ended
	// (shutdown), but never past the point where another instance may
	// take the claim anyway.
	rctx, rcancel := context.WithDeadline(context.WithoutCancel(ctx), time.Now().Add(d.Claim))
	defer rcancel()
	log := d.Logger.With("delivery", del)
	serr := d.attempt(ctx, h, del)
	if serr == nil {
		done := true
		if err := d.Store.CompleteDelivery(rctx, id, d.Instance, d.Now()); err != nil {
			return &done, time.Time{}, fmt.Errorf("hook %s: record delivery %d: %w", h.Name, id, err)
		}
		log.Info("event delivered")
		return &done, time.Time{}, nil
	}
	failed := false
	next = d.Now().Add(d.backoff(del.Attempts + 1))
	log.Warn("event delivery failed; it stays owed and is tried again", certfleet.LogNextAt, next, certfleet.LogError, serr)
	if err := d.Store.ReleaseDelivery(rctx, id, d.Instance, serr.Error(), next); err != nil {
		return &failed, next, fmt.Errorf("hook %s: release delivery %d: %w", h.Name, id, err)
	}
	return &failed, next, nil
}

// attempt builds del's payload and sends it, within four fifths of the
// claim.
func (d *Dispatcher) attempt(ctx context.Context, h Hook, del certfleet.Delivery) error {
	p, err := d.payload(ctx, del)
	if err != nil {
		return err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", del.Event.ID, err)
	}
	sctx, cancel := context.WithTimeout(ctx, d.Claim*4/5)
	defer cancel()
	return h.Sender.Send(sctx, p, body)
}

// payload is what hooks receive for del.
func (d *Dispatcher) payload(ctx context.Context, del certfleet.Delivery) (Payload, error) {
	p := Payload{Key: del.Key, Type: certfleet.HookType(del.Event.Kind), Event: del.Event}
	// Serials as openssl prints them (certfleet.FormatSerial), in the
	// body and in a command's environment.
	p.Event.Serial = certfleet.FormatSerial(p.Event.Serial)
	if del.Event.IssuanceID == 0 {
		return p, nil
	}
	iss, err := d.Store.Issuance(ctx, del.Event.IssuanceID)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		return p, nil
	} else if err != nil {
		return p, fmt.Errorf("load the certificate of event %d (issuance %d): %w", del.Event.ID, del.Event.IssuanceID, err)
	}
	p.Issuance = &Issuance{ID: iss.ID, Certificate: iss.Spec, KeyType: iss.KeyType, Serial: certfleet.FormatSerial(iss.Serial),
		Fingerprint: iss.Fingerprint, NotBefore: iss.NotBefore.UTC(), NotAfter: iss.NotAfter.UTC(), ChainPEM: string(iss.ChainPEM)}
	for _, id := range iss.Identifiers {
		p.Issuance.Identifiers = append(p.Issuance.Identifiers, id.Value)
	}
	return p, nil
}

// backoff is the wait after the n-th failed attempt: MinBackoff doubling
// up to MaxBackoff, less up to a quarter at random so that receivers
// coming back are not met by every instance at once.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.MinBackoff
	for k := 1; k < n && b < d.MaxBackoff; k++ {
		b *= 2
	}
	b = min(b, d.MaxBackoff)
	return b - time.Duration(rand.Int64N(int64(b/4)+1))
}
