// Package http01 solves ACME http-01 challenges (RFC 8555 §8.3) centrally.
//
// Solver.Present records the key authorization in a certfleet.ChallengeStore,
// so that the Responder of any certfleet instance behind a load balancer can
// answer the CA; a Tokens cache shared by a Solver and a Responder of the same
// process lets the Responder answer its own tokens without a store query.
//
// The Responder serves only /.well-known/acme-challenge/{token}; it is not a
// general web server (other paths go to an optional Fallback handler). To
// answer http-01 by writing files into a directory that an existing web
// server already serves, use package solver/webroot instead.
package http01

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/answers"
)

// DefaultTTL is how long a presented token stays answerable when Solver.TTL
// is zero. An authorization is validated within seconds to minutes; an hour
// covers slow CAs while bounding what a crash (no CleanUp) leaves behind.
const DefaultTTL = time.Hour

// maxTokenLen bounds the token length we accept (ours): RFC 8555 tokens
// carry at least 128 bits of entropy, 22 base64url characters; Let's Encrypt
// sends 43. 256 leaves ample room while keeping junk out of the store.
const maxTokenLen = 256

// ValidToken reports whether s is a syntactically valid challenge token.
// RFC 8555 §8.1: the token "MUST NOT contain any characters outside the
// base64url alphabet and MUST NOT include base64 padding characters ("=")".
// Checking this before any lookup keeps path tricks and junk away from the
// store.
func ValidToken(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Tokens is the in-process copy of http-01 answers (package answers)
// shared by a Solver and a Responder: the tokens this instance presented,
// answered without a store query, and, with a Follower running, copies of
// every instance's, answered while the store is unreachable. The zero
// value is ready to use; it is safe for concurrent use. The store remains
// the source of truth while it answers.
type Tokens = answers.Cache

// Solver presents http-01 challenges by storing their key authorizations.
// It is safe for concurrent use; its fields must not change after first use.
type Solver struct {
	// Store receives the tokens so that every instance's Responder can
	// answer them. It may be nil only when Tokens is set (single instance).
	Store certfleet.ChallengeStore
	// Tokens, when set, also receives each token: share it with the
	// Responder of this process for a lookup without a store query.
	Tokens *Tokens
	// TTL bounds how long a presented token is answered. Default DefaultTTL.
	TTL time.Duration
	// KeepFor bounds how long Present keeps trying to store a token while
	// the store is unreachable. Default answers.DefaultKeepFor.
	KeepFor time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

var _ certfleet.Solver = (*Solver)(nil)

// Present makes chal answerable at /.well-known/acme-challenge/{token}. On
// a store shared by instances it returns once the answer's notification
// has reached this instance, and so the others (answers.Publish; at most
// a second). It returns an EINVALID error for a malformed token or a
// challenge of another type, and the store's error otherwise.
func (s *Solver) Present(ctx context.Context, chal certfleet.Challenge) error {
	if err := check(chal); err != nil {
		return err
	}
	if s.Store == nil && s.Tokens == nil {
		return certfleet.Errorf(certfleet.EINVALID, "http-01 solver has neither a store nor a token cache")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	t := now()
	tok := certfleet.ChallengeToken{
		Type:             certfleet.ChallengeHTTP01,
		Key:              chal.Token,
		KeyAuthorization: chal.KeyAuthorization,
		Expires:          t.Add(ttl),
	}
	// Answerable here at once, whatever the store does; then in the
	// store, for the other instances, through a short outage.
	if s.Tokens != nil {
		s.Tokens.Put(tok, t)
	}
	if s.Store != nil {
		err := answers.Publish(ctx, s.Store, tok, s.KeepFor)
		if err != nil {
			if s.Tokens != nil {
				s.Tokens.Delete(tok.Key)
			}
			return fmt.Errorf("store http-01 token for %s: %w", chal.Identifier.Value, err)
		}
	}
	return nil
}

// CleanUp removes chal's token. Removing a token that is not there is not an
// error, so CleanUp may be called again, after a restart, or for a challenge
// whose Present failed.
func (s *Solver) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	if err := check(chal); err != nil {
		return err
	}
	if s.Tokens != nil {
		s.Tokens.Delete(chal.Token)
	}
	if s.Store != nil {
		if err := s.Store.DeleteChallenge(ctx, certfleet.ChallengeHTTP01, chal.Token); err != nil {
			return fmt.Errorf("delete http-01 token for %s: %w", chal.Identifier.Value, err)
		}
	}
	return nil
}

func check(chal certfleet.Challenge) error {
	if chal.Type != certfleet.ChallengeHTTP01 {
		return certfleet.Errorf(certfleet.EINVALID, "http-01 solver given a %s challenge", chal.Type)
	}
	if !ValidToken(chal.Token) {
		return certfleet.Errorf(certfleet.EINVALID, "http-01 challenge for %s: token is not base64url", chal.Identifier.Value)
	}
	return nil
}
