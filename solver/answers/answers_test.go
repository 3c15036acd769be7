package answers_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/answers"
	"github.com/certfleet/certfleet/sqlite"
)

func TestCache(t *testing.T) {
	var c answers.Cache
	now := time.Now()
	c.Put(certfleet.ChallengeToken{Key: "a", KeyAuthorization: "a.x", Expires: now.Add(time.Minute)}, now)
	c.Put(certfleet.ChallengeToken{Key: "old", KeyAuthorization: "old.x", Expires: now.Add(time.Second)}, now)
	if tok, ok := c.Get("a", now); !ok || tok.KeyAuthorization != "a.x" {
		t.Errorf("Get(a) = %+v, %v", tok, ok)
	}
	if _, ok := c.Get("old", now.Add(2*time.Second)); ok {
		t.Error("an expired answer is given")
	}
	c.Put(certfleet.ChallengeToken{Key: "b", Expires: now.Add(time.Minute)}, now.Add(2*time.Second))
	if c.Len() != 2 {
		t.Errorf("Len = %d after a put past the expiry of one, want 2 (expired ones dropped)", c.Len())
	}
	c.Delete("a")
	if _, ok := c.Own("a", now); ok {
		t.Error("a deleted answer is given")
	}
	if c.StoreDown(now) {
		t.Error("StoreDown before any failure")
	}
	c.StoreFailed(now)
	if !c.StoreDown(now.Add(time.Second)) || c.StoreDown(now.Add(time.Minute)) {
		t.Error("StoreDown does not last a few seconds after a failure")
	}
}

// TestFollowerPolls: without notifications (SQLite) the copy is refreshed
// at the interval: an answer another process presented is copied, one it
// removed is dropped.
func TestFollowerPolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	open := func() *sqlite.Store {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	other, mine := open(), open()
	var c answers.Cache
	copied := make(chan int, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	f := &answers.Follower{Cache: &c, Store: mine, Type: certfleet.ChallengeHTTP01, Interval: 50 * time.Millisecond,
		Copied: func(n int) {
			select {
			case copied <- n:
			default:
			}
		}}
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: "tok", KeyAuthorization: "tok.x", Expires: time.Now().Add(time.Hour)}
	if err := other.PutChallenge(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if err := other.PutChallenge(t.Context(), certfleet.ChallengeToken{Type: certfleet.ChallengeTLSALPN01, Key: "name", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	waitCopied(t, copied, 1) // the tls-alpn-01 answer is not http-01's
	if got, ok := c.Get("tok", time.Now()); !ok || got.KeyAuthorization != "tok.x" {
		t.Errorf("copied %+v, %v", got, ok)
	}
	if err := other.DeleteChallenge(t.Context(), certfleet.ChallengeHTTP01, "tok"); err != nil {
		t.Fatal(err)
	}
	waitCopied(t, copied, 0)
	if _, ok := c.Get("tok", time.Now()); ok {
		t.Error("an answer removed from the store is still copied")
	}
}
