package storetest

// The pack delay's state (issue 14): Job.ChangedAt, the first change of a
// spec not yet ordered, and ScheduleUpdate.SeenRevision, which tells a
// spec changed while its job was leased from one whose names the
// self-tests left out of the order.

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func testPackDelay(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	later := func() certfleet.ScheduleUpdate {
		return certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)}
	}
	addName := func(sp certfleet.CertificateSpec, name string) certfleet.CertificateSpec {
		sp.Identifiers = append(append([]certfleet.Identifier(nil), sp.Identifiers...), certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: name})
		return sp
	}
	key := keyOf("pack", certfleet.ECDSAP256)

	t.Run("a window from the first change", func(t *testing.T) {
		s := newStore(t)
		sp := NewSpec("pack")
		before := time.Now().Add(-timeSlack)
		mustSync(t, s, certfleet.SourceConfig, sp)
		j := mustJob(t, s, key)
		if j.ChangedAt.Before(before) || j.ChangedAt.After(time.Now().Add(timeSlack)) || j.TargetRevision != sp.Revision(certfleet.ECDSAP256) {
			t.Fatalf("new job: ChangedAt %v, TargetRevision %q; want about now, %q", j.ChangedAt, j.TargetRevision, sp.Revision(certfleet.ECDSAP256))
		}
		first := j.ChangedAt
		time.Sleep(5 * time.Millisecond)
		sp = addName(sp, "b.example.org")
		mustSync(t, s, certfleet.SourceConfig, sp)
		j = mustJob(t, s, key)
		checkTime(t, "ChangedAt after a second change", j.ChangedAt, first)
		if !isDue(j) || j.TargetRevision != sp.Revision(certfleet.ECDSAP256) {
			t.Errorf("after a second change: NextAt %v, TargetRevision %q; want due, %q", j.NextAt, j.TargetRevision, sp.Revision(certfleet.ECDSAP256))
		}
		// Ordered with the revision seen at claim: nothing is pending.
		claimed := mustClaimKey(t, s, "owner-a", key)
		if _, err := s.CompleteIssuance(t.Context(), "owner-a", NewIssuance(sp, certfleet.ECDSAP256),
			certfleet.ScheduleUpdate{NextAt: later().NextAt, SeenRevision: claimed.TargetRevision}, certfleet.Attempt{}); err != nil {
			t.Fatal(err)
		}
		if j = mustJob(t, s, key); !j.ChangedAt.IsZero() || isDue(j) {
			t.Errorf("after the issuance: ChangedAt %v, NextAt %v; want none pending, not due", j.ChangedAt, j.NextAt)
		}
		// A change after it opens a new window; one back to what is
		// issued closes it.
		before = time.Now().Add(-timeSlack)
		mustSync(t, s, certfleet.SourceConfig, addName(sp, "c.example.org"))
		if j = mustJob(t, s, key); j.ChangedAt.Before(before) || !isDue(j) {
			t.Errorf("after a change of an issued spec: ChangedAt %v (want after %v), due %v", j.ChangedAt, before, isDue(j))
		}
		mustSync(t, s, certfleet.SourceConfig, sp)
		if j = mustJob(t, s, key); !j.ChangedAt.IsZero() {
			t.Errorf("spec back to the issued revision: ChangedAt %v, want none pending", j.ChangedAt)
		}
	})

	t.Run("names left out are not a change", func(t *testing.T) {
		// A certificate issued without a waiting name (of another
		// revision than the spec's) is not due again until the
		// scheduled time: only a change while leased makes it due.
		s := newStore(t)
		full := addName(NewSpec("pack"), "waiting.example.org")
		mustSync(t, s, certfleet.SourceConfig, full)
		claimed := mustClaimKey(t, s, "owner-a", key)
		narrowed := NewSpec("pack")
		next := later()
		next.SeenRevision = claimed.TargetRevision
		if _, err := s.CompleteIssuance(t.Context(), "owner-a", NewIssuance(narrowed, certfleet.ECDSAP256), next, certfleet.Attempt{}); err != nil {
			t.Fatal(err)
		}
		j := mustJob(t, s, key)
		checkTime(t, "NextAt after issuing without the waiting name", j.NextAt, next.NextAt)
		if !j.ChangedAt.IsZero() {
			t.Errorf("ChangedAt %v, want none pending", j.ChangedAt)
		}
		if err := s.RetryNow(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		claimed = mustClaimKey(t, s, "owner-a", key)
		u := certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Minute), SeenRevision: claimed.TargetRevision}
		if err := s.Reschedule(t.Context(), key, "owner-a", u); err != nil {
			t.Fatal(err)
		}
		checkTime(t, "NextAt after Reschedule", mustJob(t, s, key).NextAt, u.NextAt)
	})

	t.Run("a change while leased", func(t *testing.T) {
		s := newStore(t)
		sp := NewSpec("pack")
		mustSync(t, s, certfleet.SourceConfig, sp)
		claimed := mustClaimKey(t, s, "owner-a", key)
		mustSync(t, s, certfleet.SourceConfig, addName(sp, "late.example.org"))
		u := certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour), SeenRevision: claimed.TargetRevision}
		if err := s.Reschedule(t.Context(), key, "owner-a", u); err != nil {
			t.Fatal(err)
		}
		if j := mustJob(t, s, key); !isDue(j) {
			t.Errorf("rescheduled after a change while leased: NextAt %v, want due at once", j.NextAt)
		}
		claimed = mustClaimKey(t, s, "owner-a", key)
		mustSync(t, s, certfleet.SourceConfig, addName(addName(sp, "late.example.org"), "later.example.org"))
		before := time.Now().Add(-timeSlack)
		if _, err := s.CompleteIssuance(t.Context(), "owner-a", NewIssuance(addName(sp, "late.example.org"), certfleet.ECDSAP256),
			certfleet.ScheduleUpdate{NextAt: later().NextAt, SeenRevision: claimed.TargetRevision}, certfleet.Attempt{}); err != nil {
			t.Fatal(err)
		}
		// The change's own window starts at the issuance.
		if j := mustJob(t, s, key); !isDue(j) || j.ChangedAt.Before(before) {
			t.Errorf("completed after a change while leased: NextAt %v, ChangedAt %v; want due, changed after %v", j.NextAt, j.ChangedAt, before)
		}
	})

	t.Run("retries do not wait", func(t *testing.T) {
		s := newStore(t)
		mustSync(t, s, certfleet.SourceConfig, NewSpec("pack"))
		if err := s.RetryNow(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		if j := mustJob(t, s, key); !j.ChangedAt.IsZero() {
			t.Errorf("after RetryNow: ChangedAt %v, want none (an operator's retry is now)", j.ChangedAt)
		}
		mustSync(t, s, certfleet.SourceConfig, addName(NewSpec("pack"), "b.example.org"))
		mustClaimKey(t, s, "owner-a", key)
		if err := s.FailJob(t.Context(), key, "owner-a", certfleet.Attempt{Error: "boom"}, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if j := mustJob(t, s, key); !j.ChangedAt.IsZero() {
			t.Errorf("after FailJob: ChangedAt %v, want none (the retry does not wait)", j.ChangedAt)
		}
	})
}
