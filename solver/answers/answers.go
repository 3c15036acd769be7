// Package answers keeps challenge answers (key authorizations) in memory,
// so that the built-in http-01 and tls-alpn-01 responders answer the CA
// while the store is unreachable (issue 16: a PostgreSQL restart turned
// answers into 503s, an authorization invalid and a second order). A Cache
// holds the answers this instance presented, and copies of every
// instance's: each one as its notification brings it
// (certfleet.ChallengeWatcher: no read of the store, which an outage right
// after the present could cut), and all of them listed from the store
// (certfleet.ChallengeLister) after a reconnection
// (certfleet.ChallengeNotifier) and at an interval.
//
// It is not a store and decides nothing about which answer is right while
// the store is up: the responders (solver/http01, solver/tlsalpn01) say
// when they use it. It does not solve challenges either.
package answers

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Timing of Follow, with reasons.
const (
	// DefaultInterval is how often Follow copies the store's answers
	// without a notification: the fallback of a store that sends none
	// (SQLite, where one instance presents everything itself anyway)
	// or a notification lost while reconnecting.
	DefaultInterval = 5 * time.Second
	// minGap bounds the copies notifications cause: a burst of presents
	// on other instances costs at most one list query per minGap.
	minGap = 100 * time.Millisecond
	// downFor is how long after a failed store lookup the responders
	// answer from memory without asking the store first, so that the
	// CA's request does not wait for a lookup timeout at every try.
	downFor = 3 * time.Second
)

// Cache is an in-memory copy of challenge answers of one challenge type.
// The zero value is ready to use; it is safe for concurrent use.
type Cache struct {
	mu       sync.Mutex                          // guards own, copied, downTill, copiedAt
	own      map[string]certfleet.ChallengeToken // presented here, by key
	copied   map[string]heldCopy                 // the store's, listed at copiedAt or handed over since
	copiedAt time.Time
	downTill time.Time
}

// heldCopy is a copied answer and when it was copied.
type heldCopy struct {
	tok certfleet.ChallengeToken
	at  time.Time
}

// Put adds an answer this instance presents. Expired answers are dropped
// on the way, so the map cannot grow without bound.
func (c *Cache) Put(tok certfleet.ChallengeToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own == nil {
		c.own = make(map[string]certfleet.ChallengeToken)
	}
	for k, v := range c.own {
		if expired(v, now) {
			delete(c.own, k)
		}
	}
	c.own[tok.Key] = tok
}

// Delete removes an answer presented here (CleanUp), and its copy.
func (c *Cache) Delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.own, key)
	delete(c.copied, key)
}

// Own returns the answer this instance presented for key, if it has not
// expired at now.
func (c *Cache) Own(key string, now time.Time) (certfleet.ChallengeToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.own[key]
	if !ok || expired(t, now) {
		return certfleet.ChallengeToken{}, false
	}
	return t, true
}

// Get returns the answer for key, presented here or copied from the store,
// if it has not expired at now. An answer presented here wins.
func (c *Cache) Get(key string, now time.Time) (certfleet.ChallengeToken, bool) {
	if t, ok := c.Own(key, now); ok {
		return t, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.copied[key]
	if !ok || expired(cp.tok, now) {
		return certfleet.ChallengeToken{}, false
	}
	return cp.tok, true
}

// Copy keeps tok, presented by another instance (or this one) and handed
// over with its notification (certfleet.ChallengeWatcher), at now; a tok
// with an empty KeyAuthorization was removed, and its copy goes. Expired
// copies are dropped on the way.
func (c *Cache) Copy(tok certfleet.ChallengeToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok.KeyAuthorization == "" {
		delete(c.copied, tok.Key)
		return
	}
	if c.copied == nil {
		c.copied = make(map[string]heldCopy)
	}
	for k, v := range c.copied {
		if expired(v.tok, now) {
			delete(c.copied, k)
		}
	}
	c.copied[tok.Key] = heldCopy{tok: tok, at: now}
}

// StoreFailed records that a store lookup failed at now: for a few
// seconds StoreDown reports true.
func (c *Cache) StoreFailed(now time.Time) {
	c.mu.Lock()
	c.downTill = now.Add(downFor)
	c.mu.Unlock()
}

// StoreDown reports whether a store lookup failed within the last few
// seconds (StoreFailed): answer from memory first.
func (c *Cache) StoreDown(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Before(c.downTill)
}

// Len returns how many answers are held (presented and copied).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.own) + len(c.copied)
}

func expired(t certfleet.ChallengeToken, now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// Follower copies the answers of one challenge type from a store into a
// Cache until its context ends.
type Follower struct {
	Cache *Cache
	Store certfleet.ChallengeStore
	Type  certfleet.ChallengeType
	// Interval is how often the answers are copied without a
	// notification. Default DefaultInterval.
	Interval time.Duration
	// Logger receives a warning when copying starts failing and a note
	// when it works again. Nil discards.
	Logger *slog.Logger
	// Copied, if set, is called after every successful copy (tests).
	Copied func(n int)
}

// Run copies the answers at once, then each one the store hands over
// (certfleet.ChallengeWatcher) as it arrives, and all of them whenever
// the store says some may have been missed (certfleet.ChallengeNotifier)
// and at least every Interval, until ctx ends. A store that cannot list its answers (no
// certfleet.ChallengeLister) makes Run return at once: only the answers
// presented here are kept.
func (f *Follower) Run(ctx context.Context) {
	lister, ok := f.Store.(certfleet.ChallengeLister)
	if !ok || f.Cache == nil {
		return
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	interval := f.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	if w, ok := f.Store.(certfleet.ChallengeWatcher); ok {
		// Before the first list, so that nothing presented meanwhile
		// is missed.
		stop := w.WatchChallenges(func(tok certfleet.ChallengeToken) {
			if tok.Type == f.Type {
				f.Cache.Copy(tok, time.Now())
			}
		})
		defer stop()
	}
	var changes <-chan struct{}
	if n, ok := f.Store.(certfleet.ChallengeNotifier); ok {
		changes = n.ChallengeChanges(ctx)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
		case <-timer.C:
		}
		listed := time.Now()
		lctx, cancel := context.WithTimeout(ctx, interval)
		toks, err := lister.Challenges(lctx, f.Type)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				log.Warn("cannot copy the challenge answers from the store; answering from the copy made before",
					"challenge", string(f.Type), certfleet.LogError, err, "answers", f.Cache.Len())
			}
			failing = true
		default:
			if failing {
				log.Info("challenge answers copied from the store again", "challenge", string(f.Type), "answers", len(toks))
			}
			failing = false
			f.Cache.replaceCopies(toks, listed, time.Now())
			if f.Copied != nil {
				f.Copied(len(toks))
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(interval)
		// Bound the rate of copies a burst of notifications causes.
		select {
		case <-ctx.Done():
			return
		case <-time.After(minGap):
		}
	}
}

// replaceCopies makes toks, listed from the store starting at listed, the
// copied answers. Answers handed over (Copy) after listed stay though the
// list lacks them: it may have been read before they were committed.
func (c *Cache) replaceCopies(toks []certfleet.ChallengeToken, listed, now time.Time) {
	m := make(map[string]heldCopy, len(toks))
	for _, t := range toks {
		m[t.Key] = heldCopy{tok: t, at: now}
	}
	c.mu.Lock()
	for k, v := range c.copied {
		if _, ok := m[k]; !ok && !v.at.Before(listed) && !expired(v.tok, now) {
			m[k] = v
		}
	}
	c.copied, c.copiedAt = m, now
	c.mu.Unlock()
}

// Retry steps of Keep, with reasons.
const (
	// DefaultKeepFor bounds how long a solver keeps trying to store an
	// answer while the store is unreachable: a database restart takes
	// seconds; the CA's authorization waits far longer than this.
	DefaultKeepFor = 30 * time.Second
	keepBackoffMin = 100 * time.Millisecond
	keepBackoffMax = 2 * time.Second
)

// Keep runs fn (a store write of an answer) until it succeeds, fails with
// an error that retrying cannot fix (an invalid value), ctx ends, or
// keepFor (DefaultKeepFor when zero) has passed, with backoff; it returns
// fn's last error. Solvers use it so that an answer presented during a
// store outage reaches the store, and every instance, once it is back.
func Keep(ctx context.Context, keepFor time.Duration, fn func(ctx context.Context) error) error {
	if keepFor <= 0 {
		keepFor = DefaultKeepFor
	}
	deadline := time.Now().Add(keepFor)
	backoff := keepBackoffMin
	for {
		err := fn(ctx)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		switch certfleet.ErrorCode(err) {
		case certfleet.EINVALID, certfleet.ECONFLICT, certfleet.EUNAUTHORIZED, certfleet.ENOTFOUND:
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, keepBackoffMax)
	}
}

// DefaultEchoWait bounds how long Publish waits for the notification of
// the answer it stored: a listener that reconnects takes longer, and the
// others then read the store or list it.
const DefaultEchoWait = time.Second

// Publish stores tok with Keep's retries (keepFor) and, on a store that
// hands every answer to every instance (certfleet.ChallengeWatcher),
// waits, at most DefaultEchoWait, until this instance's own copy of the
// notification is back. PostgreSQL sends a notification to every
// listening instance at once, so by then the others have it too (or have
// it in their connection's buffer), and the CA, told to validate next,
// finds the answer in memory on whichever instance it reaches, even if
// the store goes away at that moment (issue 16: without the wait, a fifth
// of the CA's requests reached an instance before the notification did,
// and were answered by a read of the store). Not hearing the echo is no
// error: the others still read the store.
func Publish(ctx context.Context, store certfleet.ChallengeStore, tok certfleet.ChallengeToken, keepFor time.Duration) error {
	w, ok := store.(certfleet.ChallengeWatcher)
	if !ok {
		return Keep(ctx, keepFor, func(ctx context.Context) error { return store.PutChallenge(ctx, tok) })
	}
	echo := make(chan struct{})
	var once sync.Once
	stop := w.WatchChallenges(func(got certfleet.ChallengeToken) {
		if got.Type == tok.Type && got.Key == tok.Key && got.KeyAuthorization == tok.KeyAuthorization {
			once.Do(func() { close(echo) })
		}
	})
	defer stop()
	if err := Keep(ctx, keepFor, func(ctx context.Context) error { return store.PutChallenge(ctx, tok) }); err != nil {
		return err
	}
	t := time.NewTimer(DefaultEchoWait)
	defer t.Stop()
	select {
	case <-echo:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}
