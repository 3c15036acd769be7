package storetest

// Challenge tokens of the built-in responders: put, replace, delete, expiry.

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func testChallenges(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	ctx := t.Context()
	tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: "tok-1", KeyAuthorization: "tok-1.thumb", Expires: time.Now().Add(time.Hour)}
	if err := s.PutChallenge(ctx, tok); err != nil {
		t.Fatal(err)
	}
	checkChallenge(t, s, tok)
	// Same key, other type: a separate entry.
	alpn := certfleet.ChallengeToken{Type: certfleet.ChallengeTLSALPN01, Key: "tok-1", KeyAuthorization: "alpn", Expires: time.Now().Add(time.Hour)}
	if err := s.PutChallenge(ctx, alpn); err != nil {
		t.Fatal(err)
	}
	checkChallenge(t, s, tok)
	checkChallenge(t, s, alpn)
	// Replace.
	tok.KeyAuthorization, tok.Expires = "tok-1.other", time.Now().Add(2*time.Hour)
	if err := s.PutChallenge(ctx, tok); err != nil {
		t.Fatal(err)
	}
	checkChallenge(t, s, tok)
	// Delete, twice.
	for range 2 {
		if err := s.DeleteChallenge(ctx, tok.Type, tok.Key); err != nil {
			t.Errorf("DeleteChallenge: %v", err)
		}
	}
	_, err := s.Challenge(ctx, tok.Type, tok.Key)
	wantCode(t, "Challenge after delete", err, certfleet.ENOTFOUND)
	checkChallenge(t, s, alpn)
	// Expired.
	old := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: "old", KeyAuthorization: "old.thumb", Expires: time.Now().Add(-time.Second)}
	if err := s.PutChallenge(ctx, old); err != nil {
		t.Fatal(err)
	}
	_, err = s.Challenge(ctx, old.Type, old.Key)
	wantCode(t, "expired Challenge", err, certfleet.ENOTFOUND)
}

func checkChallenge(t *testing.T, s certfleet.Store, want certfleet.ChallengeToken) {
	t.Helper()
	got, err := s.Challenge(t.Context(), want.Type, want.Key)
	if err != nil {
		t.Errorf("Challenge(%s, %s): %v", want.Type, want.Key, err)
		return
	}
	checkTime(t, "challenge Expires", got.Expires, want.Expires)
	got.Expires = want.Expires
	if got != want {
		t.Errorf("Challenge = %+v, want %+v", got, want)
	}
}

// testChallengeList: the live answers of one type, for responders that
// copy them into memory (issue 16). Expired ones and other types are left
// out.
func testChallengeList(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	lister, ok := s.(certfleet.ChallengeLister)
	if !ok {
		t.Fatalf("%T does not list challenges (certfleet.ChallengeLister)", s)
	}
	ctx := t.Context()
	for _, tok := range []certfleet.ChallengeToken{
		{Type: certfleet.ChallengeHTTP01, Key: "b", KeyAuthorization: "b.x", Expires: time.Now().Add(time.Hour)},
		{Type: certfleet.ChallengeHTTP01, Key: "a", KeyAuthorization: "a.x", Expires: time.Now().Add(time.Hour)},
		{Type: certfleet.ChallengeHTTP01, Key: "gone", KeyAuthorization: "gone.x", Expires: time.Now().Add(-time.Second)},
		{Type: certfleet.ChallengeTLSALPN01, Key: "name.example", KeyAuthorization: "n.x", Expires: time.Now().Add(time.Hour)},
	} {
		if err := s.PutChallenge(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := lister.Challenges(ctx, certfleet.ChallengeHTTP01)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "a" || got[0].KeyAuthorization != "a.x" || got[1].Key != "b" || got[0].Type != certfleet.ChallengeHTTP01 {
		t.Errorf("http-01 answers = %+v, want a and b", got)
	}
	got, err = lister.Challenges(ctx, certfleet.ChallengeTLSALPN01)
	if err != nil || len(got) != 1 || got[0].Key != "name.example" {
		t.Errorf("tls-alpn-01 answers = %+v, %v", got, err)
	}
}
