package manager_test

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// TestCompromisedKeyIsReplaced (issue 6 §8): once a reuse_key certificate's
// key is on the compromised-key list, the job, made due, re-issues at once
// (not "renewal not due") with a new key, and later renewals reuse the new
// key, never the blocked one.
func TestCompromisedKeyIsReplaced(t *testing.T) {
	e := newTestEnv(t, map[string]pebbleca.Profile{pebbleca.DefaultProfile: {ValidityPeriod: time.Hour}})
	s := spec(t, "keep", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "keep.certfleet.test")
	s.ReuseKey = true
	e.sync(s)
	m := e.manager(noARI{e.issuer(e.ca.DirectoryURL(), nil)})
	mustRunOnce(t, m)
	first, _ := e.current("keep", certfleet.ECDSAP256)

	// Due now but not compromised: a valid certificate is not renewed.
	if err := e.store.RetryNow(t.Context(), certfleet.JobKey{Spec: "keep", KeyType: certfleet.ECDSAP256}); err != nil {
		t.Fatal(err)
	}
	if rep := mustRunOnce(t, m); rep.Issued != 0 || rep.Deferred != 1 {
		t.Fatalf("due, not compromised: %+v; want deferred", rep.Results)
	}

	id, err := first.KeyID()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.BlockKey(t.Context(), certfleet.BlockedKey{KeyID: id, Reason: "key compromise", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RetryNow(t.Context(), certfleet.JobKey{Spec: "keep", KeyType: certfleet.ECDSAP256}); err != nil {
		t.Fatal(err)
	}
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Fatalf("compromised key: %+v; want a replacement issued", rep.Results)
	}
	second, _ := e.current("keep", certfleet.ECDSAP256)
	secondID, _ := second.KeyID()
	if second.ID == first.ID || secondID == id || string(second.KeyPEM) == string(first.KeyPEM) {
		t.Fatal("the replacement reused the compromised key")
	}
	attempts, err := e.store.Attempts(t.Context(), certfleet.JobKey{Spec: "keep", KeyType: certfleet.ECDSAP256}, 1)
	if err != nil || len(attempts) != 1 || attempts[0].Outcome != certfleet.OutcomeIssued {
		t.Fatalf("last attempt %+v, %v", attempts, err)
	}
	// reuse_key goes on with the new key.
	e.clock.Advance(40 * time.Minute)
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Fatalf("renewal: %+v", rep.Results)
	}
	third, _ := e.current("keep", certfleet.ECDSAP256)
	if string(third.KeyPEM) != string(second.KeyPEM) {
		t.Fatal("reuse_key: the renewal after the replacement did not keep the new key")
	}
}
