package storetest

// What a lease holder records when it is done with a job (FailJob,
// CompleteIssuance, Reschedule), RetryNow, NextDue and listing jobs.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func testFailJob(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
	key := keyOf("one", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	keyPEM := []byte("-----BEGIN PRIVATE KEY-----\npending\n-----END PRIVATE KEY-----\n")
	if err := s.SetPendingOrder(t.Context(), key, "owner-a", "https://ca.example/order/7", keyPEM); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); j.PendingOrderURL != "https://ca.example/order/7" || string(j.PendingKeyPEM) != string(keyPEM) {
		t.Errorf("pending order = %q, key %q; want it stored", j.PendingOrderURL, j.PendingKeyPEM)
	}
	for i := 1; i <= 2; i++ {
		if i > 1 {
			mustClaimKey(t, s, "owner-a", key)
		}
		started := time.Now().Add(-time.Second)
		a := certfleet.Attempt{
			Instance: "owner-a", StartedAt: started, FinishedAt: time.Now(),
			Outcome: certfleet.OutcomeFailed, OrderURL: "https://ca.example/order/7",
			Error: fmt.Sprintf("failure %d", i), ProblemType: "urn:ietf:params:acme:error:connection",
		}
		nextAt := time.Now().Add(-time.Millisecond * 10) // due again at once
		if err := s.FailJob(t.Context(), key, "owner-a", a, nextAt); err != nil {
			t.Fatalf("FailJob %d: %v", i, err)
		}
		j := mustJob(t, s, key)
		if j.Failures != i || j.LastError != a.Error || j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
			t.Errorf("after failure %d: Failures %d, LastError %q, lease %q; want %d, %q, released",
				i, j.Failures, j.LastError, j.LeaseOwner, i, a.Error)
		}
		checkTime(t, "NextAt", j.NextAt, nextAt)
		checkTime(t, "LastErrorAt", j.LastErrorAt, a.FinishedAt)
		if j.PendingOrderURL != "https://ca.example/order/7" || string(j.PendingKeyPEM) != string(keyPEM) {
			t.Errorf("FailJob dropped the pending order: %q", j.PendingOrderURL)
		}
		attempts, err := s.Attempts(t.Context(), key, 10)
		if err != nil || len(attempts) != i {
			t.Fatalf("Attempts = %d, %v; want %d", len(attempts), err, i)
		}
		got := attempts[0]
		checkTime(t, "attempt StartedAt", got.StartedAt, a.StartedAt)
		checkTime(t, "attempt FinishedAt", got.FinishedAt, a.FinishedAt)
		if got.ID == 0 || got.JobKey != key || got.Error != a.Error || got.Outcome != certfleet.OutcomeFailed ||
			got.Instance != a.Instance || got.OrderURL != a.OrderURL || got.ProblemType != a.ProblemType {
			t.Errorf("newest attempt = %+v, want %+v", got, a)
		}
	}
	if a, _ := s.Attempts(t.Context(), key, 1); len(a) != 1 || a[0].Error != "failure 2" {
		t.Errorf("Attempts(limit 1) = %+v, want the newest only", a)
	}
	// Clearing the pending order.
	mustClaimKey(t, s, "owner-a", key)
	if err := s.SetPendingOrder(t.Context(), key, "owner-a", "", nil); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); j.PendingOrderURL != "" || len(j.PendingKeyPEM) != 0 {
		t.Errorf("after clearing: pending order %q, key of %d bytes", j.PendingOrderURL, len(j.PendingKeyPEM))
	}
}

// testMarkPlacing: the mark of an order being placed survives a failed
// attempt (the order may exist though its answer was lost) and is cleared
// once the order's URL is saved and when the job completes (issue 16).
func testMarkPlacing(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
	key := keyOf("one", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	mark := certfleet.OrderPlacing{At: time.Now().Truncate(time.Second), Account: "https://ca.example/acct/1",
		Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: "one.example"}}}
	if err := s.MarkPlacing(t.Context(), key, "owner-a", mark); err != nil {
		t.Fatal(err)
	}
	if err := s.FailJob(t.Context(), key, "owner-a", certfleet.Attempt{Error: "answer lost"}, time.Now().Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	claimed := mustClaimKey(t, s, "owner-b", key)
	for _, j := range []certfleet.Job{claimed, mustJob(t, s, key)} {
		if !j.Placing.At.Equal(mark.At) || j.Placing.Account != mark.Account || !slices.Equal(j.Placing.Identifiers, mark.Identifiers) {
			t.Errorf("placing mark = %+v, want %+v", j.Placing, mark)
		}
	}
	if err := s.SetPendingOrder(t.Context(), key, "owner-b", "https://ca.example/order/9", []byte("key")); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); !j.Placing.At.IsZero() {
		t.Errorf("placing mark %+v kept after the order's URL was saved", j.Placing)
	}
	if err := s.MarkPlacing(t.Context(), key, "owner-b", mark); err != nil {
		t.Fatal(err)
	}
	iss := NewIssuance(NewSpec("one"), certfleet.ECDSAP256)
	if _, err := s.CompleteIssuance(t.Context(), "owner-b", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}, certfleet.Attempt{}); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); !j.Placing.At.IsZero() {
		t.Errorf("placing mark %+v kept after the issuance", j.Placing)
	}
}

func testCompleteIssuance(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	key := keyOf("one", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	if err := s.SetPendingOrder(t.Context(), key, "owner-a", "https://ca.example/order/1", []byte("pending key")); err != nil {
		t.Fatal(err)
	}
	if err := s.FailJob(t.Context(), key, "owner-a", certfleet.Attempt{Error: "first try"}, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	mustClaimKey(t, s, "owner-a", key)

	want := NewIssuance(sp, certfleet.ECDSAP256)
	want.Replaces = 0
	next := certfleet.ScheduleUpdate{
		NextAt:     time.Now().Add(60 * 24 * time.Hour),
		ARIStart:   time.Now().Add(59 * 24 * time.Hour),
		ARIEnd:     time.Now().Add(61 * 24 * time.Hour),
		ARIRetryAt: time.Now().Add(6 * time.Hour),
	}
	attempt := certfleet.Attempt{Instance: "owner-a", StartedAt: time.Now().Add(-time.Second), FinishedAt: time.Now(),
		Outcome: certfleet.OutcomeIssued, OrderURL: want.OrderURL}
	got, err := s.CompleteIssuance(t.Context(), "owner-a", want, next, attempt)
	if err != nil {
		t.Fatalf("CompleteIssuance: %v", err)
	}
	if got.ID == 0 {
		t.Fatalf("CompleteIssuance returned ID 0")
	}
	want.ID = got.ID
	checkIssuance(t, got, want)
	stored, err := s.Issuance(t.Context(), got.ID)
	if err != nil {
		t.Fatalf("Issuance(%d): %v", got.ID, err)
	}
	checkIssuance(t, stored, want)

	j := mustJob(t, s, key)
	if j.CurrentID != got.ID || j.CurrentRevision != want.SpecRevision {
		t.Errorf("job current = %d rev %s, want %d rev %s", j.CurrentID, j.CurrentRevision, got.ID, want.SpecRevision)
	}
	if j.PendingOrderURL != "" || len(j.PendingKeyPEM) != 0 {
		t.Errorf("pending order kept after issuance: %q", j.PendingOrderURL)
	}
	if j.Failures != 0 || j.LastError != "" || !j.LastErrorAt.IsZero() {
		t.Errorf("failures kept after issuance: %d, %q at %v", j.Failures, j.LastError, j.LastErrorAt)
	}
	if j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
		t.Errorf("lease kept after issuance: %q until %v", j.LeaseOwner, j.LeaseUntil)
	}
	checkTime(t, "NextAt", j.NextAt, next.NextAt)
	checkTime(t, "ARIStart", j.ARIStart, next.ARIStart)
	checkTime(t, "ARIEnd", j.ARIEnd, next.ARIEnd)
	checkTime(t, "ARIRetryAt", j.ARIRetryAt, next.ARIRetryAt)

	attempts, err := s.Attempts(t.Context(), key, 0)
	if err != nil || len(attempts) != 2 {
		t.Fatalf("Attempts = %+v, %v; want 2", attempts, err)
	}
	if a := attempts[0]; a.Outcome != certfleet.OutcomeIssued || a.Instance != "owner-a" || a.OrderURL != want.OrderURL {
		t.Errorf("newest attempt = %+v, want the issuance", a)
	}
	if attempts[1].Error != "first try" || attempts[0].ID <= attempts[1].ID {
		t.Errorf("attempts not newest first: %+v", attempts)
	}
	if got := mustClaim(t, s, "owner-b", time.Now(), 10); len(got) != 0 {
		t.Errorf("claimed %+v right after issuance, want nothing due", got)
	}

	// The same certificate saved again (the first save's reply was lost,
	// issue 16): the stored issuance, nothing added.
	again, err := s.CompleteIssuance(t.Context(), "owner-a", want, next, attempt)
	if err != nil {
		t.Fatalf("CompleteIssuance of the same certificate again: %v", err)
	}
	if again.ID != got.ID {
		t.Errorf("CompleteIssuance again returned issuance %d, want %d", again.ID, got.ID)
	}
	if as, _ := s.Attempts(t.Context(), key, 0); len(as) != 2 {
		t.Errorf("CompleteIssuance again: %d attempts, want 2", len(as))
	}

	// CompleteIssuance without the lease leaves no trace.
	_, err = s.CompleteIssuance(t.Context(), "owner-a", NewIssuance(sp, certfleet.ECDSAP256), next, attempt)
	wantCode(t, "CompleteIssuance after release", err, certfleet.ELEASELOST)
	if all, _ := s.Issuances(t.Context(), certfleet.IssuanceFilter{}); len(all) != 1 {
		t.Errorf("archive holds %d issuances, want 1", len(all))
	}
}

func testReschedule(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	iss := mustComplete(t, s, sp, certfleet.ECDSAP256)
	key := keyOf("one", certfleet.ECDSAP256)
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	mustClaimKey(t, s, "owner-a", key)
	u := certfleet.ScheduleUpdate{NextAt: time.Now().Add(48 * time.Hour), ARIStart: time.Now().Add(47 * time.Hour),
		ARIEnd: time.Now().Add(49 * time.Hour), ARIRetryAt: time.Now().Add(time.Hour)}
	if err := s.Reschedule(t.Context(), key, "owner-a", u); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	checkTime(t, "NextAt", j.NextAt, u.NextAt)
	checkTime(t, "ARIStart", j.ARIStart, u.ARIStart)
	checkTime(t, "ARIEnd", j.ARIEnd, u.ARIEnd)
	checkTime(t, "ARIRetryAt", j.ARIRetryAt, u.ARIRetryAt)
	if j.LeaseOwner != "" || j.CurrentID != iss.ID {
		t.Errorf("after Reschedule: lease %q, current %d; want released, %d", j.LeaseOwner, j.CurrentID, iss.ID)
	}
}

func testRetryNow(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	mustComplete(t, s, sp, certfleet.ECDSAP256)
	key := keyOf("one", certfleet.ECDSAP256)
	if j := mustJob(t, s, key); isDue(j) {
		t.Fatalf("job due right after issuance")
	}
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); !isDue(j) {
		t.Errorf("after RetryNow: NextAt %v, want due", j.NextAt)
	}
	err := s.RetryNow(t.Context(), keyOf("missing", certfleet.ECDSAP256))
	wantCode(t, "RetryNow(missing)", err, certfleet.ENOTFOUND)
}

// testRenewNow: a forced retry (issue 15, finding 6) makes the job due and
// asks for a new certificate; RetryNow does not; the next issuance clears
// the request, a failure keeps it.
func testRenewNow(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	mustComplete(t, s, sp, certfleet.ECDSAP256)
	key := keyOf("one", certfleet.ECDSAP256)
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); !j.RenewRequested.IsZero() {
		t.Errorf("after RetryNow: RenewRequested %v, want zero", j.RenewRequested)
	}
	before := time.Now().Add(-time.Second)
	if err := s.RenewNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	if !isDue(j) || j.RenewRequested.Before(before) {
		t.Errorf("after RenewNow: NextAt %v, RenewRequested %v; want due, requested now", j.NextAt, j.RenewRequested)
	}
	mustClaimKey(t, s, "owner-a", key)
	if err := s.FailJob(t.Context(), key, "owner-a", certfleet.Attempt{Instance: "owner-a", Error: "boom"}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); j.RenewRequested.IsZero() {
		t.Error("a failed attempt cleared RenewRequested; the retries after it must still renew")
	}
	if err := s.RetryNow(t.Context(), key); err != nil { // the retry after the failure
		t.Fatal(err)
	}
	mustComplete(t, s, sp, certfleet.ECDSAP256)
	if j := mustJob(t, s, key); !j.RenewRequested.IsZero() {
		t.Errorf("after the issuance: RenewRequested %v, want cleared", j.RenewRequested)
	}
	err := s.RenewNow(t.Context(), keyOf("missing", certfleet.ECDSAP256))
	wantCode(t, "RenewNow(missing)", err, certfleet.ENOTFOUND)
}

func testNextDue(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	if _, ok, err := s.NextDue(t.Context()); err != nil || ok {
		t.Errorf("NextDue of an empty store = ok %v, %v; want none", ok, err)
	}
	a, b, c := NewSpec("a"), NewSpec("b"), NewSpec("c")
	mustSync(t, s, certfleet.SourceConfig, a, b, c)
	mustClaim(t, s, "owner-a", time.Now(), 10)
	base := time.Now().Add(time.Hour)
	at := map[string]time.Time{"a": base, "b": base.Add(time.Hour), "c": base.Add(2 * time.Hour)}
	for name, when := range at {
		if err := s.Reschedule(t.Context(), keyOf(name, certfleet.ECDSAP256), "owner-a", certfleet.ScheduleUpdate{NextAt: when}); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.NextDue(t.Context())
	if err != nil || !ok {
		t.Fatalf("NextDue = ok %v, %v", ok, err)
	}
	checkTime(t, "NextDue", got, at["a"])
	// Withdrawing a leaves b the earliest.
	mustSync(t, s, certfleet.SourceConfig, b, c)
	got, ok, err = s.NextDue(t.Context())
	if err != nil || !ok {
		t.Fatalf("NextDue = ok %v, %v", ok, err)
	}
	checkTime(t, "NextDue after disabling a", got, at["b"])

	// Issue 16: a job in flight (leased, its NextAt past) is claimable
	// only when its lease ends; it must not hide a job due before that,
	// or the scheduler wakes for it late.
	d := NewSpec("d")
	mustSync(t, s, certfleet.SourceConfig, b, c, d)
	now := time.Now()
	claimed, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "owner-d", Now: now, Lease: 150 * time.Minute, Limit: 10})
	if err != nil || len(claimed) != 1 || claimed[0].Spec != "d" {
		t.Fatalf("ClaimDue = %v, %v; want d", claimed, err)
	}
	got, ok, err = s.NextDue(t.Context())
	if err != nil || !ok {
		t.Fatalf("NextDue = ok %v, %v", ok, err)
	}
	checkTime(t, "NextDue with d in flight", got, at["b"])
	// With b withdrawn, its lease ends before c is due: the lease's end
	// (when another instance would take it over).
	mustSync(t, s, certfleet.SourceConfig, c, d)
	got, ok, err = s.NextDue(t.Context())
	if err != nil || !ok {
		t.Fatalf("NextDue = ok %v, %v", ok, err)
	}
	checkTime(t, "NextDue with d in flight and c later than its lease", got, claimed[0].LeaseUntil)
}

func testJobs(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("b", certfleet.RSA2048, certfleet.ECDSAP256), NewSpec("a", certfleet.ECDSAP384))
	mustSync(t, s, certfleet.SourceConfig, NewSpec("b", certfleet.RSA2048, certfleet.ECDSAP256))
	claimed, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "o", Now: time.Now(), Lease: time.Minute, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d jobs", err, len(claimed))
	}
	tests := []struct {
		name string
		f    certfleet.JobFilter
		want []string
	}{
		{"leased", certfleet.JobFilter{Leased: true}, []string{claimed[0].JobKey.String()}},
		{"enabled", certfleet.JobFilter{}, []string{"b/ecdsa-p256", "b/rsa2048"}},
		{"all", certfleet.JobFilter{IncludeDisabled: true}, []string{"a/ecdsa-p384", "b/ecdsa-p256", "b/rsa2048"}},
		{"spec", certfleet.JobFilter{Spec: "b"}, []string{"b/ecdsa-p256", "b/rsa2048"}},
		{"disabled spec", certfleet.JobFilter{Spec: "a"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, j := range mustJobs(t, s, tc.f) {
				got = append(got, j.JobKey.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Jobs(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}
