package certfleet

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The audit trail's limits, shared by every store so that SQLite and
// PostgreSQL keep exactly the same record.
const (
	// MaxEventDetail bounds Event.Detail in bytes. ACME error messages,
	// sync summaries and agent errors fit easily; a longer Detail is cut
	// at a UTF-8 boundary and ends with TruncatedMark and its full length,
	// so a reader always sees that (and how much) text is missing. Never
	// silently: see ClipEventDetail.
	MaxEventDetail = 16 << 10
	// MaxEventField bounds the short fields (Kind, Actor, Remote,
	// Certificate, KeyType, Serial, Reason): they are names and
	// addresses, never prose. Longer values are refused, not cut.
	MaxEventField = 512
	// DefaultEventLimit is the page size when EventFilter.Limit is 0.
	DefaultEventLimit = 100
	// MaxEventLimit bounds EventFilter.Limit: a page is read into memory.
	MaxEventLimit = 10000
)

// TruncatedMark starts the note ClipEventDetail appends to a cut Detail.
const TruncatedMark = "… [truncated by certfleet: "

var eventKindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ValidateEventKind checks a kind's form (lower case letters, digits and
// '_', starting with a letter, at most 64), not that certfleet emits it.
func ValidateEventKind(kind string) error {
	if !eventKindRE.MatchString(kind) {
		return fmt.Errorf("event kind %q: use lower-case letters, digits and '_', e.g. %s or %s", kind, EventIssued, EventOrderFailed)
	}
	return nil
}

// EventKinds lists the kinds certfleet emits, for help texts and to warn
// about a filter that can match nothing. Add a new kind here too.
var EventKinds = []string{
	EventIssued, EventRenewed, EventOrderFailed, EventDeferred, EventReleased, EventWaiting, EventReady, EventRevoked, EventKeyRead,
	EventTokenCreated, EventTokenRevoked, EventConfigChanged, EventSpecChanged, EventRetry,
	EventDeployed, EventDeployFailed, EventAgentReport, EventCompromise, EventAccount,
	EventSecretChanged, EventAgentForgot, EventExpiring, EventTenant, EventIdentity,
}

// ClipEventDetail returns d if it fits MaxEventDetail, else its longest
// prefix that ends on a UTF-8 boundary followed by a note saying it was
// truncated and how long it was, the whole at most MaxEventDetail bytes.
func ClipEventDetail(d string) string {
	if len(d) <= MaxEventDetail {
		return d
	}
	note := fmt.Sprintf("%s%d bytes in all, the first %%d kept]", TruncatedMark, len(d))
	keep := MaxEventDetail - len(note) - 8 // room for the kept count's digits
	for keep > 0 && !utf8.RuneStart(d[keep]) {
		keep--
	}
	return d[:keep] + fmt.Sprintf(note, keep)
}

// ActorType is the part of an actor before its first ':' ("token" of
// "token:tok_1"); stores index it so that an actor prefix filter
// ("token:") is as fast as an exact one.
func ActorType(actor string) string {
	t, _, _ := strings.Cut(actor, ":")
	return t
}

// PrepareEvent checks e before a store records it and fills what the
// stores fill alike: At (now, when zero, in UTC) and a clipped Detail.
// ID is ignored (the store assigns it). Errors are EINVALID and name the
// field.
func PrepareEvent(e Event, now time.Time) (Event, error) {
	e.ID = 0
	if err := ValidateEventKind(e.Kind); err != nil {
		return e, Errorf(EINVALID, "record event: %v", err)
	}
	if e.Actor == "" || !strings.Contains(e.Actor, ":") {
		return e, Errorf(EINVALID, "record event %s: actor %q: want TYPE:NAME, e.g. token:tok_1 or cli:root", e.Kind, e.Actor)
	}
	for _, f := range []struct{ name, v string }{
		{"actor", e.Actor}, {"remote", e.Remote}, {"certificate", e.Certificate},
		{"key_type", string(e.KeyType)}, {"serial", e.Serial}, {"reason", e.Reason},
	} {
		if len(f.v) > MaxEventField {
			return e, Errorf(EINVALID, "record event %s: %s is %d bytes, at most %d", e.Kind, f.name, len(f.v), MaxEventField)
		}
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, 0) {
			return e, Errorf(EINVALID, "record event %s: %s is not valid UTF-8 text", e.Kind, f.name)
		}
	}
	if e.At.IsZero() {
		e.At = now
	}
	e.At = e.At.UTC()
	// PostgreSQL text holds neither NUL nor invalid UTF-8: both stores
	// keep the same replacement characters instead.
	e.Detail = strings.ReplaceAll(strings.ToValidUTF8(e.Detail, "\uFFFD"), "\x00", "\uFFFD")
	e.Detail = ClipEventDetail(e.Detail)
	return e, nil
}

// CheckEventFilter validates f as every store reads it and returns it with
// Limit defaulted. Errors are EINVALID and name the field.
func CheckEventFilter(f EventFilter) (EventFilter, error) {
	switch {
	case f.Limit < 0:
		return f, Errorf(EINVALID, "event filter: limit %d: must not be negative", f.Limit)
	case f.Limit == 0:
		f.Limit = DefaultEventLimit
	case f.Limit > MaxEventLimit:
		return f, Errorf(EINVALID, "event filter: limit %d: at most %d", f.Limit, MaxEventLimit)
	}
	if f.BeforeID < 0 {
		return f, Errorf(EINVALID, "event filter: before_id %d: must not be negative", f.BeforeID)
	}
	if f.Kind != "" {
		if err := ValidateEventKind(f.Kind); err != nil {
			return f, Errorf(EINVALID, "event filter: %v", err)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, Errorf(EINVALID, "event filter: until (%s) must be after since (%s)",
			f.Until.UTC().Format(time.RFC3339), f.Since.UTC().Format(time.RFC3339))
	}
	return f, nil
}

// ActorPrefix reports whether f.Actor is a prefix ("token:", "agent:"):
// it ends in ':'. An actor without a ':' at all matches nothing.
func (f EventFilter) ActorPrefix() bool { return strings.HasSuffix(f.Actor, ":") }

// KeyReadEvent is the audit event of a key read: stores write it in the
// same transaction as the key_reads row (TokenStore.RecordKeyRead), so the
// audit trail holds every read without a second source to merge.
func KeyReadEvent(r KeyRead) Event {
	e := Event{At: r.At, Kind: EventKeyRead, Actor: ActorOf(r.TokenID), Remote: r.Remote,
		Certificate: r.Spec, KeyType: r.KeyType, Serial: r.Serial, IssuanceID: r.IssuanceID}
	if r.Count > 1 {
		e.Reason = "repeated"
		e.Detail = fmt.Sprintf("%d reads of this key by the same client since %s", r.Count, r.Since.UTC().Format(time.RFC3339))
	}
	return e
}

// ParseEventTime reads a --since/--until or since=/until= value: an RFC 3339
// time ("2026-03-01T12:00:00Z"), a date ("2026-03-01", midnight UTC), or an
// age counted back from now: a Go duration ("24h", "90m") or whole days
// ("7d"). The error says which forms are accepted.
func ParseEventTime(s string, now time.Time) (time.Time, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return time.Time{}, fmt.Errorf("empty time: give an RFC 3339 time (2026-03-01T12:00:00Z), a date (2026-03-01) or an age (24h, 7d)")
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	var age time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return time.Time{}, fmt.Errorf("time %q: an age in days is a whole number, e.g. 7d", s)
		}
		age = time.Duration(n) * 24 * time.Hour
	} else {
		d, err := time.ParseDuration(v)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: give an RFC 3339 time (2026-03-01T12:00:00Z), a date (2026-03-01) or an age (24h, 90m, 7d)", s)
		}
		if d < 0 {
			return time.Time{}, fmt.Errorf("time %q: an age must not be negative", s)
		}
		age = d
	}
	return now.Add(-age).UTC(), nil
}
