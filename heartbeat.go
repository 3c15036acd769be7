package certfleet

import (
	"context"
	"time"
)

// Heartbeat is a scheduler's sign of life, kept in the store so that every
// instance on one database (and the dashboard of any of them) sees when
// each scheduler last looked for due work. Issue 15: an operator had no way
// to tell a quiet fleet from a dead daemon.
type Heartbeat struct {
	// Instance names the scheduler (its lease owner name).
	Instance string
	// StartedAt is when the scheduler started.
	StartedAt time.Time
	// RoundAt is when it last looked at the store for due work (a round).
	RoundAt time.Time
	// Interval is the longest it promises to sleep between rounds (its
	// poll interval): a heartbeat older than StaleAfter(Interval) is stale.
	Interval time.Duration
	// Error is the last round's store error ("" when it succeeded).
	Error string
}

// Bounds of heartbeats.
const (
	// HeartbeatForget: a heartbeat older than this is forgotten at the
	// next write (restarted instances have new names; their old rows
	// would otherwise accumulate).
	HeartbeatForget = 7 * 24 * time.Hour
	// heartbeatSlack is added to twice the interval before a heartbeat
	// is stale: a busy store or a slow round must not raise an alarm.
	heartbeatSlack = time.Minute
)

// Stale reports whether the scheduler has missed its rounds at now: no
// round for more than twice its interval plus a minute.
func (h Heartbeat) Stale(now time.Time) bool {
	return now.Sub(h.RoundAt) > h.StaleAfter()
}

// StaleAfter is how long after RoundAt the heartbeat is stale.
func (h Heartbeat) StaleAfter() time.Duration { return 2*h.Interval + heartbeatSlack }

// HeartbeatStore keeps the schedulers' heartbeats. Safe for concurrent
// use; both methods honour ctx and are one small write or read.
type HeartbeatStore interface {
	// PutHeartbeat records h as its instance's latest (replacing the
	// previous one) and forgets heartbeats older than HeartbeatForget.
	// EINVALID without an instance name or a round time.
	PutHeartbeat(ctx context.Context, h Heartbeat) error
	// Heartbeats lists at most limit heartbeats (all when limit <= 0),
	// the latest round first.
	Heartbeats(ctx context.Context, limit int) ([]Heartbeat, error)
}
