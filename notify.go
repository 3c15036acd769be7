package certfleet

import "context"

// Notifier is an optional interface of a Store shared by several instances
// (postgres): it tells the scheduler and long-polls that something changed,
// so they need not wait for their next poll. Callers detect it with a type
// assertion.
//
// Changes returns a channel that receives soon after jobs or certificates
// change in the store, possibly through another instance: specs synced, a
// certificate issued, a job failed, rescheduled, retried or released. A
// receive carries no detail: look at the store. Receives are coalesced: one
// may stand for many changes, and a change made while the previous receive
// is still unread adds none. Delivery is best effort (a notification is lost
// while the store reconnects, and a reconnection itself sends one), so
// callers keep polling as a fallback. Each call gets its own channel; it is
// closed when ctx ends or the store closes. Changes must be safe for
// concurrent use and return at once.
type Notifier interface {
	Changes(ctx context.Context) <-chan struct{}
}

// ChallengeNotifier is an optional interface of a ChallengeStore shared by
// several instances (postgres): ChallengeChanges returns a channel that
// receives soon after a challenge token is presented or removed, possibly
// by another instance, so that responders keeping the tokens in memory
// (for a store outage) copy them at once. Receives carry no detail, are
// coalesced and best effort, as Notifier's; the channel is closed when ctx
// ends or the store closes.
type ChallengeNotifier interface {
	ChallengeChanges(ctx context.Context) <-chan struct{}
}

// ChallengeWatcher is an optional interface of a ChallengeStore shared by
// several instances (postgres): it hands every instance each presented or
// removed challenge answer itself, so that a responder's copy in memory
// has it without reading the store, and keeps it if the store goes away
// right after (issue 16: a token presented just before a PostgreSQL
// restart was announced, but the read that would have copied it was cut,
// and another instance answered the CA 503). Answers are public by design
// (RFC 8555 §8.3: the key authorization is what the responder serves), so
// carrying them is no disclosure; nothing else travels.
//
// WatchChallenges calls fn with every instance's PutChallenge token, this
// one's included, and, for DeleteChallenge, a token with only Type and
// Key set (an empty KeyAuthorization: removed). Calls come from one
// goroutine and must return quickly. Delivery is best effort: answers
// sent while the store reconnects are missed (a ChallengeNotifier
// receive follows the reconnection: list the store then). stop ends the
// calls; the watch ends with the store too. Safe for concurrent use.
type ChallengeWatcher interface {
	WatchChallenges(fn func(ChallengeToken)) (stop func())
}
