package acmeissuer_test

import (
	"path/filepath"
	"testing"

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
	stale := env.ca.DirectoryURL()[:len(env.ca.DirectoryURL())-len("/dir")] + "/my-account/forgotten"
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
