package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyChannel is the LISTEN/NOTIFY channel. Notifications are per
// database; the payload is the schema the change was made in, so that
// certfleet schemas sharing a database (tests, or several fleets) wake only
// their own instances.
const notifyChannel = "certfleet_changes"

// Timing of the notification connection, with reasons.
const (
	// listenCheck is how often an idle notification connection is
	// pinged: a connection that died without a word (a server failover,
	// a dropped NAT entry) would otherwise wait for notifications forever.
	listenCheck = 30 * time.Second
	// listenBackoffMin and listenBackoffMax bound the wait between
	// reconnection attempts: fast enough after a blip, gentle on a server
	// that is down.
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 10 * time.Second
)

// Changes implements certfleet.Notifier with LISTEN on a dedicated
// connection (outside the pool), started by the first call and kept until
// Close. Every transaction that changes jobs or certificates sends a NOTIFY
// at commit (see Store.notify); this instance's own changes are delivered
// too. When the connection drops it reconnects with backoff and, once
// listening again, sends one receive for whatever was missed meanwhile.
func (s *Store) Changes(ctx context.Context) <-chan struct{} {
	return s.subscribe(ctx, func() map[chan struct{}]struct{} { return s.subs })
}

// ChallengeChanges implements certfleet.ChallengeNotifier on the same
// LISTEN connection: challenge tokens are announced with their own payload
// (the schema and challengeTopic), so that they wake the responders and
// not the schedulers.
func (s *Store) ChallengeChanges(ctx context.Context) <-chan struct{} {
	return s.subscribe(ctx, func() map[chan struct{}]struct{} { return s.csubs })
}

// challengeTopic follows the schema in the payload of a challenge token's
// notification.
const challengeTopic = " challenges"

// subscribe adds a channel to the set set returns (under s.mu), starting
// the listener on first use.
func (s *Store) subscribe(ctx context.Context, set func() map[chan struct{}]struct{}) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.pool == nil || (s.lctx != nil && s.lctx.Err() != nil) {
		s.mu.Unlock()
		close(ch)
		return ch
	}
	if s.lctx == nil {
		s.lctx, s.lcancel = context.WithCancel(context.Background())
		s.subs = make(map[chan struct{}]struct{})
		s.csubs = make(map[chan struct{}]struct{})
		s.lwg.Add(1)
		go func() { defer s.lwg.Done(); s.listen(s.lctx) }()
	}
	set()[ch] = struct{}{}
	lctx := s.lctx
	s.lwg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.lwg.Done()
		select {
		case <-ctx.Done():
		case <-lctx.Done():
		}
		s.mu.Lock()
		delete(set(), ch)
		close(ch)
		s.mu.Unlock()
	}()
	return ch
}

// broadcast wakes every subscriber of the sets without blocking: a
// subscriber that has not read the previous wake-up keeps just that one
// (coalescing).
func (s *Store) broadcast(jobs, challenges bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wake := func(set map[chan struct{}]struct{}) {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if jobs {
		wake(s.subs)
	}
	if challenges {
		wake(s.csubs)
	}
}

// listen keeps a LISTEN connection until ctx ends, reconnecting with
// exponential backoff.
func (s *Store) listen(ctx context.Context) {
	backoff := listenBackoffMin
	for {
		err := s.listenOnce(ctx, func() { backoff = listenBackoffMin })
		if ctx.Err() != nil {
			return
		}
		s.logger().Warn("postgres notification connection lost; reconnecting (polling covers the gap)",
			"error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce connects, listens and relays notifications of our schema until
// the connection fails or ctx ends. connected is called once listening.
func (s *Store) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return translate(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return translate(err)
	}
	connected()
	// Changes may have been made while we were not listening.
	s.broadcast(true, true)
	s.DeliverNames(nil)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if n.Payload == s.schema {
				s.broadcast(true, false)
			} else if n.Payload == s.schema+challengeTopic {
				s.broadcast(false, true)
			} else if names, ok := strings.CutPrefix(n.Payload, s.schema+"\n"); ok {
				if names == "*" {
					s.DeliverNames(nil)
				} else {
					s.DeliverNames(strings.Split(names, "\n"))
				}
			}
		case wctx.Err() != nil && !conn.IsClosed():
			// Idle for listenCheck: is the connection still alive?
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return translate(err)
			}
		default:
			return translate(err)
		}
	}
}

// WatchNames implements certfleet.NameWatcher over LISTEN/NOTIFY: it
// starts the notification connection (as Changes does) and delivers
// every instance's NotifyNames; after a reconnection it delivers nil
// (anything may have changed meanwhile).
func (s *Store) WatchNames(fn func(names []string)) (stop func()) {
	_ = s.Changes(context.Background()) // starts the listener; ends with Close
	return s.Store.WatchNames(fn)
}
