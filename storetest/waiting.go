package storetest

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// testWaiting: waiting names (issue 14) are recorded per spec and
// identifier, replaced when tested again, forgotten when ready, listed with
// their spec's tenant, made due by RetestNow and counted by reason.
func testWaiting(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	ctx := t.Context()
	a, b := NewSpec("wa"), NewSpec("wb")
	a.Identifiers = append(a.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "second.example.org"})
	mustSync(t, s, certfleet.SourceConfig, a, b)
	now := time.Now().Truncate(time.Millisecond)
	w := func(sp certfleet.CertificateSpec, i int, code string, tests int) certfleet.WaitingName {
		return certfleet.WaitingName{Spec: sp.Name, Identifier: sp.Identifiers[i], Challenge: certfleet.ChallengeHTTP01,
			Code: code, Reason: sp.Identifiers[i].Value + " resolves elsewhere", Since: now.Add(-time.Minute),
			CheckedAt: now, NextAt: now.Add(time.Duration(tests) * time.Minute), Tests: tests}
	}
	if err := s.SetWaiting(ctx, a.Name, []certfleet.WaitingName{w(a, 0, certfleet.WaitDNS, 1), w(a, 1, certfleet.WaitHTTP, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWaiting(ctx, b.Name, []certfleet.WaitingName{w(b, 0, certfleet.WaitDNS, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	// Tested again: a's first name still waits (replaced), its second is ready.
	if err := s.SetWaiting(ctx, a.Name, []certfleet.WaitingName{w(a, 0, certfleet.WaitDNS, 3)}, []certfleet.Identifier{a.Identifiers[1]}); err != nil {
		t.Fatal(err)
	}
	got, err := s.WaitingNames(ctx, certfleet.WaitingFilter{Spec: a.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Identifier != a.Identifiers[0] || got[0].Tests != 3 || got[0].Code != certfleet.WaitDNS ||
		got[0].Reason != a.Identifiers[0].Value+" resolves elsewhere" || got[0].Challenge != certfleet.ChallengeHTTP01 {
		t.Fatalf("WaitingNames(a) = %+v, want the first name only, tested 3 times", got)
	}
	if !got[0].NextAt.Equal(now.Add(3*time.Minute)) || !got[0].Since.Equal(now.Add(-time.Minute)) || !got[0].CheckedAt.Equal(now) {
		t.Errorf("times = since %v checked %v next %v, want %v %v %v", got[0].Since, got[0].CheckedAt, got[0].NextAt,
			now.Add(-time.Minute), now, now.Add(3*time.Minute))
	}
	all, err := s.WaitingNames(ctx, certfleet.WaitingFilter{})
	if err != nil || len(all) != 2 || all[0].Spec != a.Name || all[1].Spec != b.Name {
		t.Fatalf("WaitingNames(all) = %+v, %v; want a then b", all, err)
	}
	counts, err := s.CountWaiting(ctx)
	if err != nil || counts[certfleet.WaitDNS] != 2 || len(counts) != 1 {
		t.Errorf("CountWaiting = %v, %v; want dns:2", counts, err)
	}
	n, err := s.RetestNow(ctx, a.Name)
	if err != nil || n != 1 {
		t.Fatalf("RetestNow = %d, %v; want 1", n, err)
	}
	got, _ = s.WaitingNames(ctx, certfleet.WaitingFilter{Spec: a.Name})
	if len(got) != 1 || got[0].NextAt.After(time.Now()) {
		t.Errorf("after RetestNow: %+v, want next_at now", got)
	}
	// An operator's retry of a job re-tests its spec's waiting names.
	if err := s.SetWaiting(ctx, b.Name, []certfleet.WaitingName{w(b, 0, certfleet.WaitDNS, 5)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryNow(ctx, certfleet.JobKey{Spec: b.Name, KeyType: certfleet.ECDSAP256}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.WaitingNames(ctx, certfleet.WaitingFilter{Spec: b.Name}); len(got) != 1 || got[0].NextAt.After(time.Now()) {
		t.Errorf("after RetryNow: %+v, want next_at now", got)
	}
	if err := s.SetWaiting(ctx, a.Name, nil, []certfleet.Identifier{a.Identifiers[0]}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.WaitingNames(ctx, certfleet.WaitingFilter{Spec: a.Name}); len(got) != 0 {
		t.Errorf("after ready: %+v, want none", got)
	}
}
