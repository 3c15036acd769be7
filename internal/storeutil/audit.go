package storeutil

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certfleet/certfleet"
)

// EventQuery builds the SELECT of certfleet.AuditStore.Events, the same
// for both stores but for their dialects: columns are the columns to read;
// f is checked (certfleet.CheckEventFilter); cursorAt is the at of event
// f.BeforeID as the store reads it (used when f.BeforeID > 0); ts converts
// a time to the store's at value; placeholder returns the store's n-th
// placeholder ("?" or "$n").
//
// Each filter shape is one index of 0005_audit.sql read in (at, id) order
// (the stores' TestEventQueryPlans): the equality filter that leads the
// WHERE clause picks it, certificate, then actor, then kind, then actor
// type, else (at, id) alone.
func EventQuery(columns string, f certfleet.EventFilter, cursorAt any, ts func(time.Time) any, placeholder func(n int) string) (string, []any) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return placeholder(len(args))
	}
	if f.Certificate != "" {
		where = append(where, "certificate = "+arg(f.Certificate))
	}
	switch {
	case f.Actor == "":
	case f.ActorPrefix():
		// "token:" is exactly actor_type = 'token'. A longer prefix
		// ("config:/etc/") checks the rest too; the bare case leaves it
		// out, as PostgreSQL's planner would misjudge its selectivity.
		typ := certfleet.ActorType(f.Actor)
		where = append(where, "actor_type = "+arg(typ))
		if f.Actor != typ+":" {
			where = append(where, "substr(actor, 1, "+arg(utf8.RuneCountInString(f.Actor))+") = "+arg(f.Actor))
		}
	default:
		where = append(where, "actor = "+arg(f.Actor))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(f.Kind))
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(ts(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < "+arg(ts(f.Until)))
	}
	if f.BeforeID > 0 {
		where = append(where, "(at, id) < ("+arg(cursorAt)+", "+arg(f.BeforeID)+")")
	}
	q := `SELECT ` + columns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ` + arg(f.Limit)
	return q, args
}

// NoSuchEventCursor is the error of an event filter whose before_id names
// no event.
func NoSuchEventCursor(id int64) error {
	return certfleet.Errorf(certfleet.EINVALID, "event filter: before_id %d: no such event (use the id of the last event of the previous page)", id)
}
