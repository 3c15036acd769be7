package tlsalpn01_test

import (
	"context"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// memStore is a test-only in-memory certfleet.ChallengeStore that counts
// lookups, so tests can tell whether a request reached the store. It stands
// in for the sqlite store, which is not importable here yet.
type memStore struct {
	mu      sync.Mutex // guards m, lookups
	m       map[memKey]certfleet.ChallengeToken
	lookups int
}

type memKey struct {
	typ certfleet.ChallengeType
	key string
}

var _ certfleet.ChallengeStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{m: make(map[memKey]certfleet.ChallengeToken)} }

func (s *memStore) PutChallenge(ctx context.Context, t certfleet.ChallengeToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[memKey{t.Type, t.Key}] = t
	return nil
}

func (s *memStore) DeleteChallenge(ctx context.Context, typ certfleet.ChallengeType, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, memKey{typ, key})
	return nil
}

func (s *memStore) Challenge(ctx context.Context, typ certfleet.ChallengeType, key string) (certfleet.ChallengeToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	t, ok := s.m[memKey{typ, key}]
	if !ok || !time.Now().Before(t.Expires) {
		return certfleet.ChallengeToken{}, certfleet.Errorf(certfleet.ENOTFOUND, "no %s challenge for %q", typ, key)
	}
	return t, nil
}

func (s *memStore) Lookups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

func (s *memStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
