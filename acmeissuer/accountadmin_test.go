package acmeissuer_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/mholt/acmez/v3/acme"
)

func newTestStore(t *testing.T) *sqlite.Store {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func mustStoredAccount(t *testing.T, store certfleet.Store, ca string) certfleet.Account {
	t.Helper()
	a, err := store.Account(t.Context(), ca, certfleet.DefaultAccount)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustParseKey(t *testing.T, pemKey []byte) crypto.Signer {
	t.Helper()
	k, err := certfleet.ParsePrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// caAccountFor asks the CA which account it knows for key (RFC 8555
// §7.3.1 onlyReturnExisting), with a bare acmez client: the CA's own view,
// not ours.
func caAccountFor(t *testing.T, env *testEnv, key crypto.Signer) (string, error) {
	t.Helper()
	c := &acme.Client{Directory: env.ca.DirectoryURL(), HTTPClient: env.ca.HTTPClient()}
	a, err := c.GetAccount(t.Context(), acme.Account{PrivateKey: key})
	return a.Location, err
}

func problemType(err error) string {
	var p acme.Problem
	if errors.As(err, &p) {
		return p.Type
	}
	return ""
}

// TestAccountKeyRollover: after RolloverKey the CA knows the account (same
// URL) by the new key only, the store holds the new key with no pending
// one, and the next order succeeds with it, from this issuer and from a
// second one on the same store (another process).
func TestAccountKeyRollover(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	store := newTestStore(t)
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store })
	first := mustIssue(t, iss, newTestRequest(t, certfleet.ECDSAP256, "before.example"))
	old := mustStoredAccount(t, store, env.ca.DirectoryURL())

	rolled, err := iss.RolloverKey(t.Context())
	if err != nil {
		t.Fatalf("RolloverKey: %v", err)
	}
	now := mustStoredAccount(t, store, env.ca.DirectoryURL())
	if bytes.Equal(now.KeyPEM, old.KeyPEM) || now.PendingKeyPEM != nil || now.URL != old.URL || now.KeyChangedAt.IsZero() ||
		!bytes.Equal(rolled.KeyPEM, now.KeyPEM) {
		t.Fatalf("after rollover the store has: new key %v, pending %v, url %q (was %q), key changed %v",
			!bytes.Equal(now.KeyPEM, old.KeyPEM), now.PendingKeyPEM != nil, now.URL, old.URL, now.KeyChangedAt)
	}
	// The CA's view: the old key is no longer this (or any) account's.
	if _, err := caAccountFor(t, env, mustParseKey(t, old.KeyPEM)); problemType(err) != acme.ProblemTypeAccountDoesNotExist {
		t.Fatalf("CA lookup with the old key: %v; want accountDoesNotExist", err)
	}
	if loc, err := caAccountFor(t, env, mustParseKey(t, now.KeyPEM)); err != nil || loc != old.URL {
		t.Fatalf("CA lookup with the new key: %q, %v; want %q", loc, err, old.URL)
	}
	// Orders work with the new key, here and from another issuer.
	req := newTestRequest(t, certfleet.ECDSAP256, "after.example")
	res := mustIssue(t, iss, req)
	mustVerify(t, res.ChainPEM, env.ca.Roots(), req)
	other := mustIssue(t, env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store }), newTestRequest(t, certfleet.ECDSAP256, "other.example"))
	if res.AccountURL != first.AccountURL || other.AccountURL != first.AccountURL {
		t.Fatalf("orders after rollover by %q and %q; want the same account %q", res.AccountURL, other.AccountURL, first.AccountURL)
	}
}

// TestAccountKeyRolloverCrashWindow: a rollover whose outcome the store
// did not record (pending key left by a crash) is settled at the next use
// by asking the CA: accepted → the new key is recorded; never sent → the
// pending key is dropped and the old key kept. Either way the order works.
func TestAccountKeyRolloverCrashWindow(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	store := newTestStore(t)
	mustIssue(t, env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store }), newTestRequest(t, certfleet.ECDSAP256, "a.example"))
	old := mustStoredAccount(t, store, env.ca.DirectoryURL())
	dir := env.ca.DirectoryURL()

	// 1. The CA accepted the new key, then the process died before
	// FinishKeyRollover: the key change is done at the CA with a bare
	// client, and only BeginKeyRollover reached the store.
	newKey := mustKey(t, certfleet.ECDSAP256)
	newPEM, err := certfleet.MarshalPrivateKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.BeginKeyRollover(t.Context(), dir, certfleet.DefaultAccount, newPEM); err != nil {
		t.Fatal(err)
	}
	c := &acme.Client{Directory: dir, HTTPClient: env.ca.HTTPClient()}
	if _, err := c.AccountKeyRollover(t.Context(), acme.Account{Location: old.URL, PrivateKey: mustParseKey(t, old.KeyPEM)}, newKey); err != nil {
		t.Fatalf("key change at the CA: %v", err)
	}
	res := mustIssue(t, env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store }), newTestRequest(t, certfleet.ECDSAP256, "b.example"))
	got := mustStoredAccount(t, store, dir)
	if !bytes.Equal(got.KeyPEM, newPEM) || got.PendingKeyPEM != nil || res.AccountURL != old.URL {
		t.Fatalf("accepted-then-crashed: stored key is the new one: %v, pending left: %v, ordered by %q",
			bytes.Equal(got.KeyPEM, newPEM), got.PendingKeyPEM != nil, res.AccountURL)
	}

	// 2. The process died before the CA was asked: the pending key is
	// unknown to the CA and is dropped.
	unsent, err := certfleet.MarshalPrivateKey(mustKey(t, certfleet.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.BeginKeyRollover(t.Context(), dir, certfleet.DefaultAccount, unsent); err != nil {
		t.Fatal(err)
	}
	mustIssue(t, env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store }), newTestRequest(t, certfleet.ECDSAP256, "c.example"))
	got = mustStoredAccount(t, store, dir)
	if !bytes.Equal(got.KeyPEM, newPEM) || got.PendingKeyPEM != nil {
		t.Fatalf("never-sent rollover: stored key kept: %v, pending left: %v", bytes.Equal(got.KeyPEM, newPEM), got.PendingKeyPEM != nil)
	}
}

// TestAccountDeactivation: a deactivated account is refused by the CA,
// orders for it fail at once with ErrNoRetry and a message that tells the
// operator what to do, no new account is registered silently, and
// Register makes a new one that orders again.
func TestAccountDeactivation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	store := newTestStore(t)
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store })
	mustIssue(t, iss, newTestRequest(t, certfleet.ECDSAP256, "a.example"))
	old := mustStoredAccount(t, store, env.ca.DirectoryURL())

	if _, err := iss.Register(t.Context()); !errors.Is(err, acmeissuer.ErrAccountExists) {
		t.Fatalf("Register of a valid account: %v, want ErrAccountExists", err)
	}
	got, err := iss.Deactivate(t.Context())
	if err != nil || !got.Deactivated() || got.DeactivatedAt.IsZero() {
		t.Fatalf("Deactivate: %+v, %v", got, err)
	}
	// The CA refuses the account's key now.
	if _, err := caAccountFor(t, env, mustParseKey(t, old.KeyPEM)); problemType(err) != acme.ProblemTypeUnauthorized {
		t.Fatalf("CA lookup of the deactivated account: %v; want unauthorized", err)
	}
	// Deactivating again is fine (the CA already refuses it).
	if _, err := iss.Deactivate(t.Context()); err != nil {
		t.Fatalf("Deactivate again: %v", err)
	}
	orders := env.ca.NewOrders()
	for _, issuer := range []*acmeissuer.Issuer{iss, env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store })} {
		_, err = issuer.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "b.example"))
		if !errors.As(err, new(certfleet.ErrNoRetry)) || !strings.Contains(err.Error(), "deactivated") ||
			!strings.Contains(err.Error(), "certfleet account register default") || !strings.Contains(err.Error(), "account = ") {
			t.Fatalf("order with a deactivated account: %v; want a permanent error saying what to do", err)
		}
	}
	if env.ca.NewOrders() != orders {
		t.Fatal("an order was placed with a deactivated account")
	}
	if list, err := store.Accounts(t.Context()); err != nil || len(list) != 1 || list[0].URL != old.URL || !list[0].Deactivated() {
		t.Fatalf("accounts after failed orders: %+v, %v; want only the deactivated one", list, err)
	}
	if _, err := iss.RolloverKey(t.Context()); err == nil || !strings.Contains(err.Error(), "deactivated") {
		t.Fatalf("rollover of a deactivated account: %v", err)
	}

	// An explicit registration makes a new account that orders.
	fresh, err := iss.Register(t.Context())
	if err != nil || fresh.Deactivated() || fresh.URL == old.URL {
		t.Fatalf("Register after deactivation: %+v, %v", fresh, err)
	}
	res := mustIssue(t, iss, newTestRequest(t, certfleet.ECDSAP256, "c.example"))
	if res.AccountURL != fresh.URL {
		t.Fatalf("ordered by %q, want the new account %q", res.AccountURL, fresh.URL)
	}
}

// TestEABAccountRollover: an account bound with External Account Binding
// rolls its key over and keeps ordering.
func TestEABAccountRollover(t *testing.T) {
	t.Parallel()
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	env := newTestEnv(t, pebbleca.Config{RequireEAB: true, EABKeys: map[string]string{kid: hmac}})
	store := newTestStore(t)
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) {
		c.Accounts = store
		c.EAB = &acmeissuer.EAB{KeyID: kid, HMAC: hmac}
	})
	first := mustIssue(t, iss, newTestRequest(t, certfleet.ECDSAP256, "eab.example"))
	if _, err := iss.RolloverKey(t.Context()); err != nil {
		t.Fatalf("RolloverKey of an EAB account: %v", err)
	}
	req := newTestRequest(t, certfleet.ECDSAP256, "eab2.example")
	res := mustIssue(t, iss, req)
	mustVerify(t, res.ChainPEM, env.ca.Roots(), req)
	if res.AccountURL != first.AccountURL {
		t.Fatalf("ordered by %q after rollover, want %q", res.AccountURL, first.AccountURL)
	}
}

// gatedSolver holds the first Present until release is closed, so a test
// can act while an order is in flight.
type gatedSolver struct {
	*http01
	once      sync.Once
	presented chan struct{}
	release   chan struct{}
}

func (g *gatedSolver) Present(ctx context.Context, c certfleet.Challenge) error {
	if err := g.http01.Present(ctx, c); err != nil {
		return err
	}
	first := false
	g.once.Do(func() { first = true; close(g.presented) })
	if first {
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// TestRolloverDuringOrder: another process rolls the account key over while
// an order signed with the old key is in flight; the CA refuses the old key
// and the issuer tries once more with the stored new key instead of failing
// the order.
func TestRolloverDuringOrder(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	store := newTestStore(t)
	gate := &gatedSolver{http01: env.http01, presented: make(chan struct{}), release: make(chan struct{})}
	a := env.newTestIssuer(t, func(c *acmeissuer.Config) {
		c.Accounts = store
		c.Solvers = map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: gate}
	})
	type result struct {
		res certfleet.IssueResult
		err error
	}
	done := make(chan result, 1)
	req := newTestRequest(t, certfleet.ECDSAP256, "inflight.example")
	go func() {
		res, err := a.Issue(t.Context(), req)
		done <- result{res, err}
	}()
	select {
	case <-gate.presented:
	case r := <-done:
		t.Fatalf("order ended before its challenge was presented: %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no challenge presented in 30 s")
	}
	before := mustStoredAccount(t, store, env.ca.DirectoryURL())
	if _, err := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store }).RolloverKey(t.Context()); err != nil {
		t.Fatalf("rollover by another issuer: %v", err)
	}
	close(gate.release)
	r := <-done
	if r.err != nil {
		t.Fatalf("the order in flight during the rollover failed: %v", r.err)
	}
	mustVerify(t, r.res.ChainPEM, env.ca.Roots(), req)
	if r.res.AccountURL != before.URL {
		t.Fatalf("ordered by %q, want the same account %q", r.res.AccountURL, before.URL)
	}
}
