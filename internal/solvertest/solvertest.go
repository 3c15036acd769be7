// Package solvertest holds what the challenge solvers' tests share: an
// in-memory certfleet.ChallengeStore that counts lookups, and a harness that
// has Pebble's real validator obtain a certificate through a solver.
//
// It is imported from _test.go files only. Production code uses a real store
// (package sqlite) and acmeissuer, not this.
package solvertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// MemStore is an in-memory certfleet.ChallengeStore that counts lookups, so
// tests can tell whether a request reached the store.
type MemStore struct {
	mu      sync.Mutex // guards m, lookups
	m       map[memKey]certfleet.ChallengeToken
	lookups int
}

type memKey struct {
	typ certfleet.ChallengeType
	key string
}

var _ certfleet.ChallengeStore = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: make(map[memKey]certfleet.ChallengeToken)} }

// PutChallenge implements certfleet.ChallengeStore.
func (s *MemStore) PutChallenge(ctx context.Context, t certfleet.ChallengeToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[memKey{t.Type, t.Key}] = t
	return nil
}

// DeleteChallenge implements certfleet.ChallengeStore.
func (s *MemStore) DeleteChallenge(ctx context.Context, typ certfleet.ChallengeType, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, memKey{typ, key})
	return nil
}

// Challenge implements certfleet.ChallengeStore, counting the lookup.
func (s *MemStore) Challenge(ctx context.Context, typ certfleet.ChallengeType, key string) (certfleet.ChallengeToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	t, ok := s.m[memKey{typ, key}]
	if !ok || !time.Now().Before(t.Expires) {
		return certfleet.ChallengeToken{}, certfleet.Errorf(certfleet.ENOTFOUND, "no %s challenge for %q", typ, key)
	}
	return t, nil
}

// Lookups returns how many Challenge calls were made.
func (s *MemStore) Lookups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

// Len returns how many challenges are stored.
func (s *MemStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// acmezSolver lets acmez's porcelain drive a certfleet.Solver.
type acmezSolver struct{ s certfleet.Solver }

func convert(c acme.Challenge) certfleet.Challenge {
	return certfleet.Challenge{
		Type:             certfleet.ChallengeType(c.Type),
		Identifier:       certfleet.Identifier{Type: certfleet.IdentifierType(c.Identifier.Type), Value: c.Identifier.Value},
		Token:            c.Token,
		KeyAuthorization: c.KeyAuthorization,
		URL:              c.URL,
	}
}

func (a acmezSolver) Present(ctx context.Context, c acme.Challenge) error {
	return a.s.Present(ctx, convert(c))
}

func (a acmezSolver) CleanUp(ctx context.Context, c acme.Challenge) error {
	return a.s.CleanUp(ctx, convert(c))
}

// Obtain has ca issue a certificate for names, its validator checking the
// challenges (of ACME type challenge) that s presents, and fails the test
// otherwise. It uses acmez's porcelain, independent of acmeissuer, so a
// solver bug cannot hide behind one in our order flow.
func Obtain(t *testing.T, ca *pebbleca.CA, challenge string, s certfleet.Solver, names ...string) {
	t.Helper()
	client := &acmez.Client{
		Client:           &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), PollInterval: 50 * time.Millisecond},
		ChallengeSolvers: map[string]acmez.Solver{challenge: acmezSolver{s}},
	}
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	acct, err := client.NewAccount(ctx, acme.Account{PrivateKey: accountKey, TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("new account: %v", err)
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := client.ObtainCertificateForSANs(ctx, acct, certKey, names)
	if err != nil {
		t.Fatalf("obtain %v: %v", names, err)
	}
	if len(certs) == 0 {
		t.Fatal("no certificate")
	}
}
