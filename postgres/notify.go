package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet"
)

var (
	_ certfleet.ChallengeNotifier = (*Store)(nil)
	_ certfleet.ChallengeWatcher  = (*Store)(nil)
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
// (the schema and challengeTopic), so that they reach the responders and
// not the schedulers. The tokens themselves go to WatchChallenges; this
// channel receives after a reconnection (anything may have been missed)
// and for a notification without its token.
func (s *Store) ChallengeChanges(ctx context.Context) <-chan struct{} {
	return s.subscribe(ctx, func() map[chan struct{}]struct{} { return s.csubs })
}

// challengeTopic follows the schema in the payload of a challenge token's
// notification, then a newline and the token (challengeNote, JSON). A
// payload of the topic alone (versions before the token was carried, or
// a token too large to carry) only wakes ChallengeChanges.
const challengeTopic = " challenges"

// maxChallengePayload bounds a challenge notification, below PostgreSQL's
// 8,000 bytes. A key (a token, or a name of at most 253 bytes) and its key
// authorization take a few hundred.
const maxChallengePayload = 7900

// challengeNote is a challenge token in a notification. The key
// authorization is what the responders serve to anyone who asks (RFC 8555
// §8.3), not a secret; nothing else of the account travels.
type challengeNote struct {
	Type             certfleet.ChallengeType `json:"type"`
	Key              string                  `json:"key"`
	KeyAuthorization string                  `json:"key_authorization,omitempty"` // empty: removed
	Expires          time.Time               `json:"expires,omitzero"`
}

// challengePayload is the notification of tok's change in schema.
func challengePayload(schema string, tok certfleet.ChallengeToken) (string, error) {
	b, err := json.Marshal(challengeNote{Type: tok.Type, Key: tok.Key, KeyAuthorization: tok.KeyAuthorization, Expires: tok.Expires})
	if err != nil {
		return "", fmt.Errorf("encode %s challenge %q for the other instances: %w", tok.Type, tok.Key, err)
	}
	p := schema + challengeTopic + "\n" + string(b)
	if len(p) > maxChallengePayload {
		return schema + challengeTopic, nil // the others list the store
	}
	return p, nil
}

// challengeWatchers are the functions WatchChallenges registered.
type challengeWatchers struct {
	mu   sync.Mutex // guards fns, next
	fns  map[int]func(certfleet.ChallengeToken)
	next int
}

// WatchChallenges implements certfleet.ChallengeWatcher over LISTEN/NOTIFY:
// it starts the notification connection (as ChallengeChanges does) and
// calls fn with every instance's challenge token as its notification
// arrives. After a reconnection, ChallengeChanges receives (tokens may
// have been missed).
func (s *Store) WatchChallenges(fn func(certfleet.ChallengeToken)) (stop func()) {
	s.mu.Lock()
	s.startListenerLocked() // ends with Close
	s.mu.Unlock()
	w := &s.cwatch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = make(map[int]func(certfleet.ChallengeToken))
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

// deliverChallenge decodes a challenge notification's token and calls
// every watcher with it. A payload it cannot read wakes ChallengeChanges
// instead (the followers list the store).
func (s *Store) deliverChallenge(note string) {
	var n challengeNote
	if err := json.Unmarshal([]byte(note), &n); err != nil || n.Type == "" || n.Key == "" {
		s.broadcast(false, true)
		return
	}
	tok := certfleet.ChallengeToken{Type: n.Type, Key: n.Key, KeyAuthorization: n.KeyAuthorization, Expires: n.Expires}
	w := &s.cwatch
	w.mu.Lock()
	fns := make([]func(certfleet.ChallengeToken), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(tok)
	}
}

// subscribe adds a channel to the set set returns (under s.mu), starting
// the listener on first use.
func (s *Store) subscribe(ctx context.Context, set func() map[chan struct{}]struct{}) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if !s.startListenerLocked() {
		s.mu.Unlock()
		close(ch)
		return ch
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

// startListenerLocked starts the listener unless it runs; it reports
// false when the store is closed (or was never opened). s.mu is held.
func (s *Store) startListenerLocked() bool {
	if s.pool == nil || (s.lctx != nil && s.lctx.Err() != nil) {
		return false
	}
	if s.lctx == nil {
		s.lctx, s.lcancel = context.WithCancel(context.Background())
		s.subs = make(map[chan struct{}]struct{})
		s.csubs = make(map[chan struct{}]struct{})
		s.lwg.Add(1)
		go func() { defer s.lwg.Done(); s.listen(s.lctx) }()
	}
	return true
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
			} else if note, ok := strings.CutPrefix(n.Payload, s.schema+challengeTopic+"\n"); ok {
				s.deliverChallenge(note)
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
