package storetest

// Accounts: the core contract that Run checks (CreateAccount keeps the first
// account, also under a race; the optional ReplaceAccount), and that of
// certfleet.AccountAdmin, which RunAccounts checks.

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunAccounts runs the contract of certfleet.AccountAdmin: listing, the
// two-step key rollover (begin stores a pending key; finish accepts or drops
// it; a second begin while one is pending is refused), deactivation (sticky,
// idempotent, refusing rollovers), and ReplaceAccount registering a new,
// valid account in place of a deactivated one.
func RunAccounts(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	t.Run("ListAndRollover", func(t *testing.T) { testAccountRollover(t, newStore(t)) })
	t.Run("Deactivate", func(t *testing.T) { testAccountDeactivate(t, newStore(t)) })
}

func mustCreateAccount(t *testing.T, s certfleet.Store, ca, name, url string) certfleet.Account {
	t.Helper()
	a, err := s.CreateAccount(t.Context(), certfleet.Account{CA: ca, Name: name, Contact: []string{"mailto:ops@example.org"},
		KeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nold " + name + "\n-----END PRIVATE KEY-----\n"), URL: url,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testAccountRollover(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	const ca = "https://ca.example/dir"
	old := mustCreateAccount(t, s, ca, "shop", "https://ca.example/acct/2")
	mustCreateAccount(t, s, ca, "default", "https://ca.example/acct/1")
	mustCreateAccount(t, s, "https://other.example/dir", "default", "https://other.example/acct/9")

	list, err := s.Accounts(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("Accounts = %d, %v; want 3", len(list), err)
	}
	if list[0].Name != "default" || list[0].CA != ca || list[1].CA != "https://other.example/dir" || list[2].Name != "shop" {
		t.Fatalf("Accounts not ordered by name, then CA: %s/%s, %s/%s, %s/%s", list[0].Name, list[0].CA, list[1].Name, list[1].CA, list[2].Name, list[2].CA)
	}
	if list[2].Status != certfleet.AccountValid || list[2].Deactivated() || !list[2].DeactivatedAt.IsZero() || list[2].PendingKeyPEM != nil {
		t.Fatalf("new account: status %q, deactivated at %v, pending %q", list[2].Status, list[2].DeactivatedAt, list[2].PendingKeyPEM)
	}

	// No rollover pending: a refusal of some key changes nothing.
	if got, err := s.FinishKeyRollover(ctx, ca, "shop", []byte("stray"), false, time.Now()); err != nil || !bytes.Equal(got.KeyPEM, old.KeyPEM) {
		t.Fatalf("refusal without begin: key %q, %v; want the old key kept", got.KeyPEM, err)
	}
	if _, err := s.FinishKeyRollover(ctx, ca, "shop", nil, true, time.Now()); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("finish without a key: %v, want EINVALID", err)
	}
	if err := s.BeginKeyRollover(ctx, ca, "nope", []byte("k")); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("begin on an unknown account: %v, want ENOTFOUND", err)
	}

	// Begin: the pending key is stored beside the old key.
	next := []byte("-----BEGIN PRIVATE KEY-----\nnew\n-----END PRIVATE KEY-----\n")
	if err := s.BeginKeyRollover(ctx, ca, "shop", next); err != nil {
		t.Fatal(err)
	}
	got, err := s.Account(ctx, ca, "shop")
	if err != nil || !bytes.Equal(got.PendingKeyPEM, next) || !bytes.Equal(got.KeyPEM, old.KeyPEM) {
		t.Fatalf("after begin: key %q pending %q (%v); want the old key and the new one pending", got.KeyPEM, got.PendingKeyPEM, err)
	}
	if err := s.BeginKeyRollover(ctx, ca, "shop", []byte("other")); certfleet.ErrorCode(err) != certfleet.ECONFLICT {
		t.Fatalf("second begin while one is pending: %v, want ECONFLICT", err)
	}

	// Refused by the CA: the pending key is dropped, the old one stays.
	got, err = s.FinishKeyRollover(ctx, ca, "shop", next, false, time.Now())
	if err != nil || got.PendingKeyPEM != nil || !bytes.Equal(got.KeyPEM, old.KeyPEM) || !got.KeyChangedAt.IsZero() {
		t.Fatalf("finish refused: key %q pending %q changed %v (%v)", got.KeyPEM, got.PendingKeyPEM, got.KeyChangedAt, err)
	}

	// Accepted: the pending key becomes the key; URL and creation stay.
	if err := s.BeginKeyRollover(ctx, ca, "shop", next); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	got, err = s.FinishKeyRollover(ctx, ca, "shop", next, true, at)
	if err != nil || !bytes.Equal(got.KeyPEM, next) || got.PendingKeyPEM != nil || !got.KeyChangedAt.Equal(at) ||
		got.URL != old.URL || !got.CreatedAt.Equal(old.CreatedAt) {
		t.Fatalf("finish accepted: %+v (%v)", got, err)
	}
	reread, err := s.Account(ctx, ca, "shop")
	if err != nil || !bytes.Equal(reread.KeyPEM, next) || !reread.KeyChangedAt.Equal(at) {
		t.Fatalf("re-read after rollover: key %q changed %v (%v)", reread.KeyPEM, reread.KeyChangedAt, err)
	}
	// A late acceptance never promotes another rollover's key: process A
	// proposed k1; process B, asking the CA too early, dropped it and
	// began its own rollover with k2; then A learns the CA took k1. The
	// account key is k1, and k2 stays pending for B (which the CA will
	// refuse: B signed with the key before k1) to settle.
	k1 := []byte("-----BEGIN PRIVATE KEY-----\nk1\n-----END PRIVATE KEY-----\n")
	k2 := []byte("-----BEGIN PRIVATE KEY-----\nk2\n-----END PRIVATE KEY-----\n")
	if err := s.BeginKeyRollover(ctx, ca, "shop", k1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishKeyRollover(ctx, ca, "shop", k1, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginKeyRollover(ctx, ca, "shop", k2); err != nil {
		t.Fatal(err)
	}
	got, err = s.FinishKeyRollover(ctx, ca, "shop", k1, true, time.Now())
	if err != nil || !bytes.Equal(got.KeyPEM, k1) || !bytes.Equal(got.PendingKeyPEM, k2) {
		t.Fatalf("late acceptance of k1: key %q pending %q (%v); want key k1, k2 still pending", got.KeyPEM, got.PendingKeyPEM, err)
	}
	got, err = s.FinishKeyRollover(ctx, ca, "shop", k2, false, time.Now())
	if err != nil || !bytes.Equal(got.KeyPEM, k1) || got.PendingKeyPEM != nil {
		t.Fatalf("refusal of k2: key %q pending %q (%v); want key k1, nothing pending", got.KeyPEM, got.PendingKeyPEM, err)
	}
	// The other accounts are untouched.
	other, err := s.Account(ctx, ca, "default")
	if err != nil || bytes.Equal(other.KeyPEM, next) || !other.KeyChangedAt.IsZero() {
		t.Fatalf("another account changed: %+v (%v)", other, err)
	}
}

func testAccountDeactivate(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	const ca = "https://ca.example/dir"
	mustCreateAccount(t, s, ca, "default", "https://ca.example/acct/1")
	if err := s.BeginKeyRollover(ctx, ca, "default", []byte("pending")); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	got, err := s.DeactivateAccount(ctx, ca, "default", at)
	if err != nil || !got.Deactivated() || got.Status != certfleet.AccountDeactivated || !got.DeactivatedAt.Equal(at) || got.PendingKeyPEM != nil {
		t.Fatalf("deactivate: %+v (%v)", got, err)
	}
	// Idempotent: the first time is kept.
	got, err = s.DeactivateAccount(ctx, ca, "default", at.Add(time.Hour))
	if err != nil || !got.DeactivatedAt.Equal(at) {
		t.Fatalf("deactivate again: at %v (%v), want %v", got.DeactivatedAt, err, at)
	}
	if _, err := s.DeactivateAccount(ctx, ca, "nope", at); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("deactivate unknown: %v, want ENOTFOUND", err)
	}
	if err := s.BeginKeyRollover(ctx, ca, "default", []byte("k")); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("rollover of a deactivated account: %v, want EINVALID", err)
	}
	// CreateAccount never revives it (a racing issuer gets it back as it is).
	again, err := s.CreateAccount(ctx, certfleet.Account{CA: ca, Name: "default", KeyPEM: []byte("x"), URL: "https://ca.example/acct/5"})
	if err != nil || !again.Deactivated() || again.URL != "https://ca.example/acct/1" {
		t.Fatalf("CreateAccount over a deactivated account: %+v (%v); want the deactivated one unchanged", again, err)
	}
	rep, ok := s.(certfleet.AccountReplacer)
	if !ok {
		t.Fatal("store is no certfleet.AccountReplacer")
	}
	// A replacement decided while the account was valid (the CA forgot
	// it) does not undo a deactivation made since.
	kept, err := rep.ReplaceAccount(ctx, certfleet.Account{URL: "https://ca.example/acct/1", Status: certfleet.AccountValid},
		certfleet.Account{CA: ca, Name: "default", KeyPEM: []byte("auto"), URL: "https://ca.example/acct/7"})
	if err != nil || !kept.Deactivated() || kept.URL != "https://ca.example/acct/1" {
		t.Fatalf("replacement of a valid account after its deactivation: %+v (%v); want the deactivated one kept", kept, err)
	}
	// An explicit registration (ReplaceAccount of the deactivated account
	// as it is) makes a new valid account.
	deact, err := s.Account(ctx, ca, "default")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := rep.ReplaceAccount(ctx, deact, certfleet.Account{CA: ca, Name: "default",
		KeyPEM: []byte("fresh"), URL: "https://ca.example/acct/6"})
	if err != nil || fresh.Deactivated() || fresh.Status != certfleet.AccountValid || !fresh.DeactivatedAt.IsZero() ||
		fresh.URL != "https://ca.example/acct/6" || string(fresh.KeyPEM) != "fresh" {
		t.Fatalf("ReplaceAccount of a deactivated account: %+v (%v)", fresh, err)
	}
}

// Run's account cases.

// testAccountReplace checks the optional certfleet.AccountReplacer: a
// compare-and-swap on the stored account's URL.
func testAccountReplace(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	r, ok := s.(certfleet.AccountReplacer)
	if !ok {
		t.Skip("the store does not implement certfleet.AccountReplacer")
	}
	ctx := t.Context()
	acct := func(url string) certfleet.Account {
		return certfleet.Account{CA: "https://ca.example/dir", Name: "default", KeyPEM: []byte("key of " + url), URL: url}
	}
	if _, err := s.CreateAccount(ctx, acct("https://ca.example/acct/1")); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReplaceAccount(ctx, certfleet.Account{URL: "https://ca.example/acct/1"}, acct("https://ca.example/acct/2"))
	if err != nil || got.URL != "https://ca.example/acct/2" || string(got.KeyPEM) != "key of https://ca.example/acct/2" {
		t.Fatalf("first replace = %q, %v; want account 2", got.URL, err)
	}
	// A racing instance that also saw account 1 as stale gets account 2.
	got, err = r.ReplaceAccount(ctx, certfleet.Account{URL: "https://ca.example/acct/1"}, acct("https://ca.example/acct/3"))
	if err != nil || got.URL != "https://ca.example/acct/2" {
		t.Fatalf("second replace of the same stale account = %q, %v; want the first replacement kept", got.URL, err)
	}
	if stored, err := s.Account(ctx, "https://ca.example/dir", "default"); err != nil || stored.URL != "https://ca.example/acct/2" {
		t.Fatalf("stored = %q, %v", stored.URL, err)
	}
	if _, err := r.ReplaceAccount(ctx, certfleet.Account{URL: "x"}, certfleet.Account{CA: "https://other.example/dir", Name: "default", KeyPEM: []byte("k"), URL: "u"}); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("replace of an unknown account: %v, want ENOTFOUND", err)
	}
}

func newAccount(url string) certfleet.Account {
	return certfleet.Account{
		CA:        "https://ca.example/dir",
		Name:      certfleet.DefaultAccount,
		Contact:   []string{"mailto:ops@example.org"},
		KeyPEM:    []byte("-----BEGIN PRIVATE KEY-----\n" + url + "\n-----END PRIVATE KEY-----\n"),
		URL:       url,
		CreatedAt: time.Now(),
		Status:    certfleet.AccountValid, // every new account is valid (RFC 8555 §7.1.2)
	}
}

func testAccounts(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	want := newAccount("https://ca.example/acct/1")
	_, err := s.Account(t.Context(), want.CA, want.Name)
	wantCode(t, "Account before creation", err, certfleet.ENOTFOUND)

	got, err := s.CreateAccount(t.Context(), want)
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	checkAccount(t, got, want)
	loaded, err := s.Account(t.Context(), want.CA, want.Name)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	checkAccount(t, loaded, want)

	// A second creation returns the first account unchanged.
	got, err = s.CreateAccount(t.Context(), newAccount("https://ca.example/acct/2"))
	if err != nil {
		t.Fatalf("second CreateAccount: %v", err)
	}
	checkAccount(t, got, want)
	loaded, _ = s.Account(t.Context(), want.CA, want.Name)
	checkAccount(t, loaded, want)

	// Another name or CA is another account.
	staging := newAccount("https://ca.example/acct/3")
	staging.Name = "staging"
	if got, err := s.CreateAccount(t.Context(), staging); err != nil || got.URL != staging.URL {
		t.Errorf("CreateAccount(staging) = %+v, %v; want a new account", got, err)
	}
	otherCA := newAccount("https://other.example/acct/1")
	otherCA.CA = "https://other.example/dir"
	if got, err := s.CreateAccount(t.Context(), otherCA); err != nil || got.URL != otherCA.URL {
		t.Errorf("CreateAccount(other CA) = %+v, %v; want a new account", got, err)
	}
}

func checkAccount(t *testing.T, got, want certfleet.Account) {
	t.Helper()
	checkTime(t, "account CreatedAt", got.CreatedAt, want.CreatedAt)
	got.CreatedAt = want.CreatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("account:\n got %+v\nwant %+v", got, want)
	}
}

func testAccountRace(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	const n = 8
	urls := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.CreateAccount(t.Context(), newAccount(fmt.Sprintf("https://ca.example/acct/%d", i)))
			urls[i], errs[i] = a.URL, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	stored, err := s.Account(t.Context(), "https://ca.example/dir", certfleet.DefaultAccount)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		if u != stored.URL {
			t.Errorf("creator %d got account %s, stored is %s", i, u, stored.URL)
		}
	}
}
