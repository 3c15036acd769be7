package dashboard

import (
	"context"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// auditReader is what a store that keeps the audit trail has
// (certfleet.AuditStore): the failures' classes and the audit page.
type auditReader interface {
	Events(ctx context.Context, f certfleet.EventFilter) ([]certfleet.Event, error)
}

// addHint classifies kv's newest failure and says what it means for the
// next try (issue 15, finding 7: a configuration failure showed only "next
// renewal in 20 hours"). The class is the newest order_failed event's
// Reason (certfleet.FailureReason: the ACME problem's last word, or the
// error code of a failure on our side), read with one indexed query; a
// store without the audit trail falls back to the attempt's problem type.
func (s *Server) addHint(ctx context.Context, now time.Time, name string, kv *keyView) error {
	if !wantsHint(kv) {
		return nil
	}
	reason, found := "", false
	if a, ok := s.Store.(auditReader); ok {
		evs, err := a.Events(ctx, certfleet.EventFilter{Certificate: name, Kind: certfleet.EventOrderFailed, Limit: 10})
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.KeyType == "" || e.KeyType == kv.KeyType {
				reason, found = e.Reason, true
				break
			}
		}
	}
	applyHint(now, kv, reason, found)
	return nil
}

// wantsHint is whether kv is failing, so that its failure is classified.
func wantsHint(kv *keyView) bool { return kv.Failures > 0 || kv.LastError != "" }

// applyHint sets kv's Reason and Hint: reason is the newest order_failed
// event's, if found, else the attempts' problem type's last word.
func applyHint(now time.Time, kv *keyView, reason string, found bool) {
	if !found {
		reason = problemWord(kv.Problem)
	}
	kv.Reason = reason
	kv.Hint = failureHint(reason, relTime(now, kv.NextAt))
}

// failureHint is one sentence per class of failure: whether waiting helps,
// and what to do.
func failureHint(reason, next string) string {
	if next == "" {
		next = "soon"
	}
	switch reason {
	case certfleet.EINVALID, certfleet.ENOTFOUND, certfleet.EQUOTA:
		return "Configuration problem: certfleet stopped before the CA could help (a setting, a webroot, a DNS provider, a key, a quota). " +
			"The next try (" + next + ") will fail the same way until it is fixed: fix the configuration, reload, then retry it (admins: the retry button)."
	case "unauthorized", "dns", "connection", "incorrectResponse", "caa", "tls", "rejectedIdentifier", "unsupportedIdentifier":
		return "The CA could not validate the names: check DNS, the web server or the challenge set-up (certfleet check tests them). " +
			"The next try (" + next + ") fails the same way until that is fixed; then retry it (admins: the retry button)."
	case "rateLimited", certfleet.ERATELIMITED:
		return "Rate-limited by the CA: retrying sooner does not help. certfleet tries again " + next + "."
	case certfleet.EUNAVAILABLE, "timeout", "serverInternal", "badNonce", "canceled":
		return "A passing failure (the CA or a dependency did not answer): certfleet tries again by itself " + next + "."
	case certfleet.EINTERNAL:
		return "An unexpected failure: the daemon's log has the details. certfleet tries again " + next + "."
	}
	return "certfleet tries again " + next + "; if the error above names something to fix, fix it and retry."
}

// problemWord is an ACME problem type's last word.
func problemWord(pt string) string {
	if i := strings.LastIndexByte(pt, ':'); i >= 0 {
		return pt[i+1:]
	}
	return pt
}
