package storetest

// Behaviour of a store that several instances share (PostgreSQL).

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunShared runs the cases of a store shared by instances: the claim puts
// abandoned work (a lease that ran out with its owner still named: the
// instance died while working on it) before due work nobody started, so
// a takeover does not wait behind a backlog (issue 16). A store of one
// instance (SQLite, whose dead process's leases the next start releases)
// need not pass it.
func RunShared(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	t.Run("Claim/AbandonedFirst", func(t *testing.T) { testClaimAbandonedFirst(t, newStore) })
}

func testClaimAbandonedFirst(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	specs := NewSpecs("backlog", 10)
	mustSync(t, s, certfleet.SourceConfig, specs...)
	target := keyOf(specs[4].Name, certfleet.ECDSAP256)
	now := time.Now()

	// The target is due later than the nine others (a renewal, say).
	for _, j := range mustClaim(t, s, "owner-a", now, 10) {
		var err error
		if j.JobKey == target {
			err = s.Reschedule(t.Context(), j.JobKey, "owner-a", certfleet.ScheduleUpdate{NextAt: now.Add(10 * time.Second)})
		} else {
			err = s.ReleaseLease(t.Context(), j.JobKey, "owner-a")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// owner-a works on it and dies holding the lease.
	at := now.Add(20 * time.Second)
	for _, j := range mustClaim(t, s, "owner-a", at, 10) {
		if j.JobKey != target {
			if err := s.ReleaseLease(t.Context(), j.JobKey, "owner-a"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if j := mustJob(t, s, target); j.LeaseOwner != "owner-a" {
		t.Fatalf("target lease %q, want owner-a's", j.LeaseOwner)
	}

	// Once the lease has run out, the next claim takes it first, though
	// nine jobs were due before it.
	got := mustClaim(t, s, "owner-b", at.Add(2*leaseTime), 1)
	if len(got) != 1 || got[0].JobKey != target {
		t.Fatalf("claimed %+v, want the abandoned %s before the backlog", got, target)
	}
	if rest := mustClaim(t, s, "owner-b", at.Add(2*leaseTime), 20); len(rest) != 9 {
		t.Errorf("then claimed %d jobs, want the 9 others", len(rest))
	}
}
