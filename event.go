package certfleet

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
)

// Event kinds. An Event is one thing that happened that an operator may ask
// about later (the audit trail), count (metrics) or be told about (alerts).
// Kinds are stable strings: they are stored and filtered on.
const (
	EventIssued        = "issued"          // a lineage's first certificate
	EventRenewed       = "renewed"         // a certificate replaced by a new one
	EventOrderFailed   = "order_failed"    // an attempt failed; Reason classifies it
	EventDeferred      = "deferred"        // work put off on purpose (a rate-limit budget); Detail says why and until when
	EventReleased      = "released"        // work that waited for a rate-limit budget got its turn; Detail says which and since when
	EventRevoked       = "revoked"         // a certificate revoked at the CA
	EventKeyRead       = "key_read"        // a private key sent to an API client
	EventTokenCreated  = "token_created"   // an API token made
	EventTokenRevoked  = "token_revoked"   // an API token revoked
	EventConfigChanged = "config_changed"  // the config's certificates synced with a change
	EventSpecChanged   = "spec_changed"    // a certificate added, changed or removed over the API
	EventRetry         = "retry"           // an operator asked for a retry now
	EventDeployed      = "deployed"        // files written and commands run
	EventDeployFailed  = "deploy_failed"   // a deploy (central or on an agent) failed
	EventAgentReport   = "agent_report"    // an agent reported what it installed
	EventCompromise    = "key_compromise"  // a key declared compromised
	EventAccount       = "account"         // an ACME account registered, rolled over, deactivated, declared or deleted at runtime
	EventSecretChanged = "secret_changed"  // a stored secret set or deleted (never its value)
	EventAgentForgot   = "agent_forgotten" // an operator removed an agent's reports (a host out of service)
	EventExpiring      = "expiring"        // a certificate close to expiry while its renewal fails, or expired (an alert incident opened or worsened)
	EventTenant        = "tenant"          // a tenant created, changed or deleted (Reason says which)
	EventIdentity      = "identity"        // a host identity's enrollment token made, enrolled, renewed or revoked (Reason says which)
	EventWaiting       = "waiting"         // a name failed its self-test before an order (issue 14); Reason is a Wait* code, Detail says what to fix
	EventReady         = "ready"           // a waiting name passed its self-test and rejoins its certificate's orders
)

// Event is one entry of the audit trail. Who did what, to which certificate,
// from where, and what came of it. It never holds a private key or secret.
type Event struct {
	ID   int64     `json:"id,omitempty"` // set by the store
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	// Actor is who acted: "instance:NAME" (a certfleet scheduler),
	// "token:ID" (an API client), "identity:ID" (a host identity or a
	// client certificate of the operator's CA), "cli:USER" (a command run by an
	// operator), "agent:NAME", "config:FILE", or "inventory:NAME" (an
	// inventory source).
	Actor string `json:"actor"`
	// Remote is where the actor acted from (an API client's address).
	Remote string `json:"remote,omitempty"`
	// Certificate and KeyType name the lineage the event is about, if any.
	Certificate string  `json:"certificate,omitempty"`
	KeyType     KeyType `json:"key_type,omitempty"`
	// Serial (hex) and IssuanceID name the certificate, if any.
	Serial     string `json:"serial,omitempty"`
	IssuanceID int64  `json:"issuance_id,omitempty"`
	// Reason is a short machine-readable class: FailureReason's value for
	// failures, a revocation reason, a budget name.
	Reason string `json:"reason,omitempty"`
	// Detail is the human-readable rest: an error message, a summary.
	Detail string `json:"detail,omitempty"`
}

// LogValue keeps events short in logs.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", e.Kind),
		slog.String("actor", e.Actor),
		slog.String(LogCertificate, e.Certificate),
		slog.String("reason", e.Reason),
	)
}

// EventSink receives events: the audit trail stores them, metrics count
// them, alerts react to them. RecordEvent must be safe for concurrent use
// and should return quickly.
type EventSink interface {
	RecordEvent(ctx context.Context, e Event) error
}

// EventSinks sends each event to every sink in turn, returning the first
// error (after trying them all).
type EventSinks []EventSink

// RecordEvent implements EventSink.
func (s EventSinks) RecordEvent(ctx context.Context, e Event) error {
	var first error
	for _, sink := range s {
		if sink == nil {
			continue
		}
		if err := sink.RecordEvent(ctx, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// EventBatchSink is an optional interface of an EventSink that records
// many events at once: a store writes them in one transaction instead of
// one each (an inventory source's first sync adds 100,000 certificates).
// RecordEvents records all of them or, with an error, none (a store) or
// as many as it could (other sinks).
type EventBatchSink interface {
	RecordEvents(ctx context.Context, events []Event) error
}

// RecordEvents records events in every sink: at once in those that take
// batches, one by one in the others. It returns the first error (after
// trying them all).
func (s EventSinks) RecordEvents(ctx context.Context, events []Event) error {
	var first error
	for _, sink := range s {
		if sink == nil {
			continue
		}
		if err := RecordEvents(ctx, sink, events); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// RecordEvents records events in sink: at once when it is an
// EventBatchSink, else one by one (returning the first error).
func RecordEvents(ctx context.Context, sink EventSink, events []Event) error {
	if b, ok := sink.(EventBatchSink); ok {
		return b.RecordEvents(ctx, events)
	}
	var first error
	for _, e := range events {
		if err := sink.RecordEvent(ctx, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// EventFilter selects events. Zero fields match everything; Limit 0 means the
// store's default (100). Results are newest first: by At, then by ID.
type EventFilter struct {
	Certificate string    // exact spec name
	Kind        string    // exact kind
	Actor       string    // exact actor, or a prefix ending in ':' ("token:")
	Since       time.Time // At >= Since
	Until       time.Time // At < Until
	// BeforeID pages: only the events listed after the event with this ID
	// (older, or as old with a smaller ID); pass the last ID of a page to
	// get the next one. With IDs given in At order this is ID < BeforeID.
	BeforeID int64
	Limit    int
}

// AuditStore keeps the audit trail: append-only, never updated or deleted
// (the databases refuse it too). RecordEvent checks and completes the event
// with PrepareEvent (EINVALID for a bad one) and is durable when it returns.
// Safe for concurrent use; both methods honour ctx.
type AuditStore interface {
	EventSink
	// Events lists the events f selects, newest first, at most f.Limit
	// (see CheckEventFilter; EINVALID for a bad filter). Each filter is
	// served by an index, so a page is fast with millions of events.
	Events(ctx context.Context, f EventFilter) ([]Event, error)
}

// FailureReason classifies a failure for metrics and alerts in a few stable
// words: the ACME problem type's last part ("rateLimited", "unauthorized",
// "dns", "connection", ...) when the CA sent one, else the error code
// ("unavailable", "invalid", ...), "canceled" or "timeout" for contexts.
func FailureReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	if pt := ProblemType(err); pt != "" {
		if i := strings.LastIndexByte(pt, ':'); i >= 0 {
			return pt[i+1:]
		}
		return pt
	}
	return ErrorCode(err)
}
