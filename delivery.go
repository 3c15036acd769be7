package certfleet

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"
)

// Event types sent out to hooks (issue 18; docs/events.md): the few words
// an operator's receiver acts on. They are not a second event model: each
// is the public name of audit event kinds (HookType), and what a hook
// receives is the audit event itself.
const (
	HookIssued   = "issued"   // a lineage's first certificate (EventIssued)
	HookRenewed  = "renewed"  // a certificate replaced by a new one (EventRenewed)
	HookFailed   = "failed"   // an order or a deploy failed (EventOrderFailed, EventDeployFailed)
	HookWaiting  = "waiting"  // work put off until something is ready (EventDeferred today)
	HookDeployed = "deployed" // files written and commands run, centrally or by an agent (EventDeployed)
	HookRevoked  = "revoked"  // a certificate revoked at the CA (EventRevoked)
	HookExpiring = "expiring" // close to expiry while renewal fails, or expired (EventExpiring)
)

// HookTypes lists the hook event types, in documentation order.
var HookTypes = []string{HookIssued, HookRenewed, HookFailed, HookWaiting, HookDeployed, HookRevoked, HookExpiring}

// HookType returns the hook event type of an audit event kind, "" for the
// kinds hooks are not told about (token changes, key reads, ...).
//
// "waiting" is, today, a job deferred by a rate-limit budget (EventDeferred):
// the closest state certfleet has to issue 14's waiting names, whose kind
// is to map here too.
func HookType(kind string) string {
	switch kind {
	case EventIssued:
		return HookIssued
	case EventRenewed:
		return HookRenewed
	case EventOrderFailed, EventDeployFailed:
		return HookFailed
	case EventDeferred:
		return HookWaiting
	case EventDeployed:
		return HookDeployed
	case EventRevoked:
		return HookRevoked
	case EventExpiring:
		return HookExpiring
	}
	return ""
}

var hookNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidateHookName checks a hook's name: 1 to 64 lower-case letters,
// digits, '_' or '-', starting with a letter or digit. Deliveries are kept
// under it, so renaming a hook leaves the old name's owed deliveries
// behind.
func ValidateHookName(name string) error {
	if !hookNameRE.MatchString(name) {
		return fmt.Errorf("hook name %q: use 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// EventKey returns the idempotency key of the delivery of audit event id:
// the same for every attempt and every hook.
func EventKey(id int64) string { return "certfleet-event-" + strconv.FormatInt(id, 10) }

// MaxDeliveryKey bounds an idempotency key's length.
const MaxDeliveryKey = 200

// Delivery is one audit event owed to, or delivered to, one hook.
type Delivery struct {
	ID   int64
	Hook string
	// Key is the idempotency key receivers deduplicate on: EventKey of the
	// event, or the key the event was recorded with.
	Key string
	// Event is the audit event, as stored.
	Event Event
	// CreatedAt is when the event was recorded; NextAt when the delivery
	// may next be tried; DeliveredAt when it succeeded (zero: owed).
	CreatedAt, NextAt, DeliveredAt time.Time
	// Attempts counts failed attempts; LastError is the newest failure.
	Attempts  int
	LastError string
	// ClaimOwner may send it until ClaimUntil (DeliveryStore.ClaimDelivery).
	ClaimOwner string
	ClaimUntil time.Time
}

// Owed reports whether the delivery has not succeeded yet.
func (d Delivery) Owed() bool { return d.DeliveredAt.IsZero() }

// LogValue keeps deliveries short in logs.
func (d Delivery) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", d.ID),
		slog.String("hook", d.Hook),
		slog.String("key", d.Key),
		slog.String("kind", d.Event.Kind),
		slog.String(LogCertificate, d.Event.Certificate),
		slog.Int("attempts", d.Attempts),
	)
}

// DeliveryFilter selects deliveries. Zero fields match everything; Limit 0
// means 100. Results are oldest event first.
type DeliveryFilter struct {
	Hook string
	// OwedOnly selects deliveries not yet made.
	OwedOnly bool
	// DueBy, with OwedOnly, selects those that may be tried at DueBy: their
	// NextAt has come and no claim runs past it.
	DueBy time.Time
	Limit int
}

// DeliveryStore keeps the audit events owed to hooks: an outbox that
// survives restarts and that several instances drain together. Recording
// an event and what it owes is one transaction, so an event recorded is
// an event owed; sending is claimed with a conditional update, so exactly
// one instance at a time tries each delivery. Safe for concurrent use;
// every method honours ctx and is durable when it returns.
type DeliveryStore interface {
	// RecordOwedEvent records e in the audit trail (as
	// AuditStore.RecordEvent, EINVALID for a bad event) and, in the same
	// transaction, one delivery of it to each of hooks, due at once. key
	// is the idempotency key; "" means EventKey of the new event. With a
	// key given, an event of which a delivery with that key was recorded
	// before is not recorded again (recorded is false): a notification
	// retried after a crash does not make a second event. It returns the
	// event as stored.
	RecordOwedEvent(ctx context.Context, e Event, key string, hooks []string) (stored Event, recorded bool, err error)
	// Deliveries lists the deliveries f selects, oldest event first.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// ClaimDelivery gives owner the right to send delivery id until until:
	// atomically, and only if it is still owed, its NextAt has come by now
	// and no other claim runs past now. The loser (won false) must not
	// send.
	ClaimDelivery(ctx context.Context, id int64, owner string, now, until time.Time) (d Delivery, won bool, err error)
	// CompleteDelivery records that owner delivered id at at and ends the
	// claim; ELEASELOST when owner no longer holds it.
	CompleteDelivery(ctx context.Context, id int64, owner string, at time.Time) error
	// ReleaseDelivery ends owner's claim after a failed attempt: it counts
	// the attempt, keeps deliveryErr, and makes the delivery due again at
	// next. ELEASELOST when owner no longer holds the claim.
	ReleaseDelivery(ctx context.Context, id int64, owner, deliveryErr string, next time.Time) error
}
