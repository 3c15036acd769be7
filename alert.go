package certfleet

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Incident kinds: the conditions package alert watches for. Stable strings:
// they are stored and sent in notifications.
const (
	// IncidentExpiry: a certificate is close to expiry and its renewal is
	// failing, or it has expired.
	IncidentExpiry = "expiry"
	// IncidentAgentStale: an agent still has an older certificate (or
	// none) installed, longer than the grace period after the newer one
	// was issued.
	IncidentAgentStale = "agent_stale"
	// IncidentEndpointStale: an endpoint still serves an older
	// certificate, longer than the grace period after the newer one was
	// issued.
	IncidentEndpointStale = "endpoint_stale"
	// IncidentNotWritten: a certificate was issued but its files could
	// not be written where the configuration says (issue 15); resolved
	// once they are.
	IncidentNotWritten = "not_written"
)

// Severity says how bad an incident is. Severities are ordered:
// SeverityWarning < SeverityCritical < SeverityExpired. An incident is
// notified when it opens and again each time its severity rises above the
// highest one notified.
type Severity string

// Severities, from least to most severe.
const (
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
	SeverityExpired  Severity = "expired"
)

// Rank orders severities: 0 for none (or an unknown one), then 1, 2, 3.
func (s Severity) Rank() int {
	switch s {
	case SeverityWarning:
		return 1
	case SeverityCritical:
		return 2
	case SeverityExpired:
		return 3
	}
	return 0
}

// Notification states: what a notification announces about an incident.
const (
	NotifyOpened   = "opened"   // the incident is new (or new to whoever was told nothing yet)
	NotifyWorsened = "worsened" // its severity rose above the last one notified
	NotifyResolved = "resolved" // the condition cleared
)

// Incident is one occurrence of an alert condition, from the first round
// that saw it to the first round that saw it cleared. While it is open,
// at most one incident exists per Key; a condition that returns after it
// was resolved is a new incident.
type Incident struct {
	ID int64 `json:"id"` // set by the store
	// Key identifies the condition: IncidentKey of the fields below.
	Key         string  `json:"key"`
	Kind        string  `json:"kind"`
	Certificate string  `json:"certificate"`
	KeyType     KeyType `json:"key_type,omitempty"`
	// Subject is the agent's name (IncidentAgentStale) or the endpoint
	// (IncidentEndpointStale); "" for IncidentExpiry.
	Subject  string   `json:"subject,omitempty"`
	Severity Severity `json:"severity"`
	// Summary is one line for people, as of the latest observation.
	Summary string `json:"summary"`
	// Serial and NotAfter describe the certificate concerned: the current
	// one (expiry) or the old one still installed or served (stale).
	Serial   string    `json:"serial,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// Failures and LastError are the renewal job's, as last observed.
	Failures  int    `json:"failures"`
	LastError string `json:"last_error,omitempty"`
	// OpenedAt is the first observation; UpdatedAt the latest one that saw
	// the condition; ResolvedAt the observation that saw it cleared (zero
	// while open).
	OpenedAt   time.Time `json:"opened_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// NotifiedSeverity is the highest severity announced so far ("" for
	// none), NotifiedAt when the last notification went out, and
	// ResolutionNotified whether the resolution was announced.
	NotifiedSeverity   Severity  `json:"notified_severity,omitempty"`
	NotifiedAt         time.Time `json:"notified_at,omitzero"`
	ResolutionNotified bool      `json:"resolution_notified,omitempty"`
	// DeliveryAttempts counts failed deliveries since the last success,
	// and DeliveryError is the newest failure.
	DeliveryAttempts int    `json:"delivery_attempts,omitempty"`
	DeliveryError    string `json:"delivery_error,omitempty"`
	// ClaimOwner holds the right to send the pending notification until
	// ClaimUntil (see IncidentStore.ClaimNotification).
	ClaimOwner string    `json:"-"`
	ClaimUntil time.Time `json:"-"`
}

// IncidentKey identifies an incident's condition.
func IncidentKey(kind, certificate string, kt KeyType, subject string) string {
	return strings.Join([]string{kind, certificate, string(kt), subject}, "|")
}

// Open reports whether the incident is still open.
func (i Incident) Open() bool { return i.ResolvedAt.IsZero() }

// Pending returns the notification the incident is owed, if any: opened
// (nothing announced yet), worsened (the severity rose above the one
// announced), or resolved (it cleared after something was announced, or
// after a delivery was tried and failed, so that no failed notification
// is dropped without a word).
func (i Incident) Pending() (state string, ok bool) {
	if !i.Open() {
		if !i.ResolutionNotified && (i.NotifiedSeverity.Rank() > 0 || i.DeliveryAttempts > 0) {
			return NotifyResolved, true
		}
		return "", false
	}
	switch {
	case i.Severity.Rank() <= i.NotifiedSeverity.Rank():
		return "", false
	case i.NotifiedSeverity.Rank() == 0:
		return NotifyOpened, true
	default:
		return NotifyWorsened, true
	}
}

// LogValue keeps incidents short in logs.
func (i Incident) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", i.ID),
		slog.String("kind", i.Kind),
		slog.String(LogCertificate, i.Certificate),
		slog.String("subject", i.Subject),
		slog.String("severity", string(i.Severity)),
	)
}

// IncidentFilter selects incidents. Zero fields match everything; Limit 0
// means the store's default (100). Results are newest first.
type IncidentFilter struct {
	// OpenOnly selects open incidents.
	OpenOnly bool
	// Pending selects incidents owed a notification (see
	// Incident.Pending), whether or not another instance claimed it.
	Pending     bool
	Certificate string
	Limit       int
}

// IncidentStore keeps alert incidents and who may announce them. Several
// instances may evaluate the same conditions at once: observations carry
// the time they were made, and the newest one wins; notifications are
// claimed with a conditional update, so exactly one instance sends each.
type IncidentStore interface {
	// ObserveIncident records that the condition i describes held at
	// i.UpdatedAt. If an incident with i.Key is open, it takes i's
	// severity and details unless it was observed later than i.UpdatedAt
	// already. If none is open, a new one is opened at i.UpdatedAt, unless
	// an incident with that key was resolved at or after i.UpdatedAt (a
	// newer observation found the condition cleared). It returns the
	// incident as stored and whether i was applied.
	ObserveIncident(ctx context.Context, i Incident) (Incident, bool, error)
	// ResolveIncident resolves the open incident id as observed cleared at
	// at, unless a later observation saw it still open. It reports
	// whether it did.
	ResolveIncident(ctx context.Context, id int64, at time.Time) (bool, error)
	// Incidents lists the incidents f selects, newest first.
	Incidents(ctx context.Context, f IncidentFilter) ([]Incident, error)
	// ClaimNotification gives owner the right to send incident id's
	// pending notification until until: atomically, and only if a
	// notification is still owed (Incident.Pending) and no other owner's
	// claim runs past now. It returns the incident as claimed and whether
	// owner won; the loser must not send.
	ClaimNotification(ctx context.Context, id int64, owner string, now, until time.Time) (Incident, bool, error)
	// CompleteNotification records that owner announced state (NotifyOpened,
	// NotifyWorsened or NotifyResolved) at severity at time at, and ends the
	// claim. It fails with ELEASELOST when owner no longer holds the claim.
	CompleteNotification(ctx context.Context, id int64, owner, state string, severity Severity, at time.Time) error
	// ReleaseNotification ends owner's claim after a failed delivery,
	// counting the attempt and keeping deliveryErr: the notification stays
	// owed and is tried again. ELEASELOST when owner no longer holds it.
	ReleaseNotification(ctx context.Context, id int64, owner, deliveryErr string) error
}
