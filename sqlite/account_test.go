package sqlite_test

import (
	"testing"

	"github.com/certfleet/certfleet"
)

func TestReplaceAccountIsCompareAndSwap(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	acct := func(url string) certfleet.Account {
		return certfleet.Account{CA: "https://ca.example/dir", Name: "default", KeyPEM: []byte("key of " + url), URL: url}
	}
	if _, err := s.CreateAccount(ctx, acct("https://ca.example/acct/1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReplaceAccount(ctx, "https://ca.example/acct/1", acct("https://ca.example/acct/2"))
	if err != nil || got.URL != "https://ca.example/acct/2" || string(got.KeyPEM) != "key of https://ca.example/acct/2" {
		t.Fatalf("first replace = %+v, %v; want account 2", got.URL, err)
	}
	// A racing instance that also saw account 1 as stale gets account 2.
	got, err = s.ReplaceAccount(ctx, "https://ca.example/acct/1", acct("https://ca.example/acct/3"))
	if err != nil || got.URL != "https://ca.example/acct/2" {
		t.Fatalf("second replace of the same stale account = %q, %v; want the first replacement kept", got.URL, err)
	}
	if stored, err := s.Account(ctx, "https://ca.example/dir", "default"); err != nil || stored.URL != "https://ca.example/acct/2" {
		t.Fatalf("stored = %q, %v", stored.URL, err)
	}
	if _, err := s.ReplaceAccount(ctx, "x", certfleet.Account{CA: "https://other.example/dir", Name: "default", KeyPEM: []byte("k"), URL: "u"}); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("replace of an unknown account: %v, want ENOTFOUND", err)
	}
}
