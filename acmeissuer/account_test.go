package acmeissuer_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/sqlite"
)

// TestForgottenAccountIsReplaced: the CA answers accountDoesNotExist for the
// stored account (as after a CA reset); the issuer creates a new account,
// stores it in place of the old one, and the order succeeds.
func TestForgottenAccountIsReplaced(t *testing.T) {
	env := newTestEnv(t, pebbleca.Config{})
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keyPEM, err := certfleet.MarshalPrivateKey(mustKey(t, certfleet.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	stale := env.ca.APIURL("/my-account/forgotten")
	if _, err := store.CreateAccount(t.Context(), certfleet.Account{
		CA: env.ca.DirectoryURL(), Name: certfleet.DefaultAccount, KeyPEM: keyPEM, URL: stale,
	}); err != nil {
		t.Fatal(err)
	}
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store })
	req := newTestRequest(t, certfleet.ECDSAP256, "forgotten.example")
	res := mustIssue(t, iss, req)
	mustVerify(t, res.ChainPEM, env.ca.Roots(), req)

	stored, err := store.Account(t.Context(), env.ca.DirectoryURL(), certfleet.DefaultAccount)
	if err != nil {
		t.Fatal(err)
	}
	if stored.URL == stale || stored.URL != res.AccountURL {
		t.Fatalf("stored account %q after recovery; want the new one %q that issued", stored.URL, res.AccountURL)
	}
	// A second issuer on the same store uses the replacement directly.
	again := mustIssue(t, env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = store }), newTestRequest(t, certfleet.ECDSAP256, "again.example"))
	if again.AccountURL != stored.URL {
		t.Fatalf("second issuer used %q, want %q", again.AccountURL, stored.URL)
	}
}

// outageAfterFirstRead is the real store whose account reads fail after the
// first one (a database outage on cue); after that first read, an operator
// deactivates the account.
type outageAfterFirstRead struct {
	*sqlite.Store
	reads atomic.Int32
}

func (s *outageAfterFirstRead) Account(ctx context.Context, ca, name string) (certfleet.Account, error) {
	if s.reads.Add(1) > 1 {
		return certfleet.Account{}, certfleet.Errorf(certfleet.EUNAVAILABLE, "database is locked")
	}
	a, err := s.Store.Account(ctx, ca, name)
	if err == nil {
		if _, derr := s.Store.DeactivateAccount(ctx, ca, name, time.Now()); derr != nil {
			return a, derr
		}
	}
	return a, err
}

// TestForgottenAccountNotReplacedBlind: when the CA forgot the account but
// the store cannot be read to check whether the operator deactivated it,
// no new account is registered in its place: a deactivated account is
// never revived by accident.
func TestForgottenAccountNotReplacedBlind(t *testing.T) {
	env := newTestEnv(t, pebbleca.Config{})
	store := newTestStore(t)
	keyPEM, err := certfleet.MarshalPrivateKey(mustKey(t, certfleet.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	stale := env.ca.APIURL("/my-account/forgotten")
	if _, err := store.CreateAccount(t.Context(), certfleet.Account{
		CA: env.ca.DirectoryURL(), Name: certfleet.DefaultAccount, KeyPEM: keyPEM, URL: stale,
	}); err != nil {
		t.Fatal(err)
	}
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Accounts = &outageAfterFirstRead{Store: store} })
	if _, err := iss.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "forgotten.example")); err == nil {
		t.Fatal("issued with an account the store could not check")
	}
	a := mustStoredAccount(t, store, env.ca.DirectoryURL())
	if !a.Deactivated() || a.URL != stale {
		t.Fatalf("stored account %s (%s); want the deactivated %s left alone", a.URL, a.Status, stale)
	}
}
