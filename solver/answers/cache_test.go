package answers

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestListKeepsLaterCopies: a list of the store read before an answer was
// committed must not drop the copy its notification brought meanwhile
// (issue 16), while a copy older than the list that the list lacks
// (removed, its removal missed) goes.
func TestListKeepsLaterCopies(t *testing.T) {
	var c Cache
	t0 := time.Now()
	tok := func(k string) certfleet.ChallengeToken {
		return certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: k, KeyAuthorization: k + ".x", Expires: t0.Add(time.Hour)}
	}
	c.Copy(tok("old"), t0)
	c.Copy(tok("new"), t0.Add(2*time.Second))
	c.replaceCopies([]certfleet.ChallengeToken{tok("listed")}, t0.Add(time.Second), t0.Add(3*time.Second))
	for _, tc := range []struct {
		key  string
		want bool
	}{{"listed", true}, {"new", true}, {"old", false}} {
		if _, ok := c.Get(tc.key, t0.Add(3*time.Second)); ok != tc.want {
			t.Errorf("Get(%q) after the list = %v, want %v", tc.key, ok, tc.want)
		}
	}
	c.Copy(certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: "new"}, t0.Add(4*time.Second))
	if _, ok := c.Get("new", t0.Add(4*time.Second)); ok {
		t.Error("a copy handed over as removed is still given")
	}
}
