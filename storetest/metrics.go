package storetest

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// StatsStore is a store that answers metrics scrapes.
type StatsStore interface {
	certfleet.Store
	certfleet.StatsStore
}

// RunMetrics runs the contract of certfleet.StatsStore: job counts by state
// (queue, leases held and expired, failing) and the current certificates of
// enabled jobs, newest issuance only.
func RunMetrics(t *testing.T, newStore func(t *testing.T) StatsStore) {
	t.Run("JobStats", func(t *testing.T) { testJobStats(t, newStore(t)) })
	t.Run("CurrentCertificates", func(t *testing.T) { testCurrentCertificates(t, newStore(t)) })
}

func testJobStats(t *testing.T, s StatsStore) {
	ctx := t.Context()
	empty, err := s.JobStats(ctx, time.Now())
	if err != nil || empty != (certfleet.JobStats{}) {
		t.Fatalf("empty store: JobStats = %+v, %v; want zeros", empty, err)
	}
	a := NewSpec("a", certfleet.ECDSAP256, certfleet.RSA2048)
	b, c, d, e, gone := NewSpec("b"), NewSpec("c"), NewSpec("d"), NewSpec("e"), NewSpec("gone")
	mustSync(t, s, certfleet.SourceConfig, a, b, c, d, e, gone)
	// a (both key types), b: issued, next due in 30 days.
	mustComplete(t, s, a, certfleet.ECDSAP256)
	mustComplete(t, s, a, certfleet.RSA2048)
	mustComplete(t, s, b, certfleet.ECDSAP256)
	// c: failed, due again already.
	mustClaimKey(t, s, "owner-a", keyOf("c", certfleet.ECDSAP256))
	if err := s.FailJob(ctx, keyOf("c", certfleet.ECDSAP256), "owner-a",
		certfleet.Attempt{Instance: "owner-a", Outcome: certfleet.OutcomeFailed, Error: "boom"}, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	// gone: withdrawn; its job no longer counts.
	mustSync(t, s, certfleet.SourceConfig, a, b, c, d, e)
	// d, e: leased (in flight), with leaseTime.
	now := time.Now()
	claimed := mustClaim(t, s, "owner-b", now, 1000)
	if len(claimed) != 3 { // c, d, e
		t.Fatalf("claimed %d jobs, want 3 (c, d, e)", len(claimed))
	}
	if err := s.ReleaseLease(ctx, keyOf("c", certfleet.ECDSAP256), "owner-b"); err != nil {
		t.Fatal(err)
	}

	got, err := s.JobStats(ctx, now)
	want := certfleet.JobStats{Jobs: 6, Due: 1, LeasesHeld: 2, LeasesExpired: 0, Failing: 1}
	if err != nil || got != want {
		t.Errorf("JobStats(now) = %+v, %v; want %+v", got, err, want)
	}
	// Once the leases have run out they count as expired, and their jobs
	// are due again (the queue grows).
	later := now.Add(2 * leaseTime)
	got, err = s.JobStats(ctx, later)
	want = certfleet.JobStats{Jobs: 6, Due: 3, LeasesHeld: 0, LeasesExpired: 2, Failing: 1}
	if err != nil || got != want {
		t.Errorf("JobStats(now+2 leases) = %+v, %v; want %+v", got, err, want)
	}
}

func testCurrentCertificates(t *testing.T, s StatsStore) {
	ctx := t.Context()
	if got, err := s.CurrentCertificates(ctx, certfleet.CurrentFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("empty store: CurrentCertificates = %+v, %v", got, err)
	}
	a := NewSpec("a", certfleet.ECDSAP256, certfleet.RSA2048)
	b, pending, gone := NewSpec("b"), NewSpec("pending"), NewSpec("gone")
	mustSync(t, s, certfleet.SourceConfig, a, b, pending, gone)
	aEC := mustComplete(t, s, a, certfleet.ECDSAP256)
	aRSA := mustComplete(t, s, a, certfleet.RSA2048)
	mustComplete(t, s, b, certfleet.ECDSAP256)
	if err := s.RetryNow(ctx, keyOf("b", certfleet.ECDSAP256)); err != nil {
		t.Fatal(err)
	}
	bNew := mustComplete(t, s, b, certfleet.ECDSAP256) // replaces the first
	mustComplete(t, s, gone, certfleet.ECDSAP256)
	mustSync(t, s, certfleet.SourceConfig, a, b, pending) // withdraws gone

	// b fails once after its renewal: the row carries the job's state.
	bKey := keyOf("b", certfleet.ECDSAP256)
	if err := s.RetryNow(ctx, bKey); err != nil {
		t.Fatal(err)
	}
	mustClaimKey(t, s, "owner-a", bKey)
	bNext := time.Now().Add(time.Hour).UTC()
	if err := s.FailJob(ctx, bKey, "owner-a", certfleet.Attempt{Instance: "owner-a", Error: "dns down"}, bNext); err != nil {
		t.Fatal(err)
	}

	got, err := s.CurrentCertificates(ctx, certfleet.CurrentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []certfleet.Issuance{aEC, aRSA, bNew}
	if len(got) != len(want) {
		t.Fatalf("CurrentCertificates = %d rows %+v, want %d (a ×2, b's newest)", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Spec != w.Spec || g.KeyType != w.KeyType || g.IssuanceID != w.ID || g.Serial != w.Serial ||
			g.Fingerprint != w.Fingerprint || !sameTime(g.NotBefore, w.NotBefore) || !sameTime(g.NotAfter, w.NotAfter) ||
			!sameTime(g.IssuedAt, w.IssuedAt) {
			t.Errorf("row %d = %+v\nwant issuance %d %s/%s serial %s %s..%s", i, g, w.ID, w.Spec, w.KeyType, w.Serial, w.NotBefore, w.NotAfter)
		}
		if g.Lifetime() <= 0 {
			t.Errorf("row %d: lifetime %s", i, g.Lifetime())
		}
	}
	if g := got[2]; !sameTime(g.NextAt, bNext) || g.Failures != 1 || g.LastError != "dns down" {
		t.Errorf("b's row: next %v, failures %d, last error %q; want the job's %v, 1, dns down", g.NextAt, g.Failures, g.LastError, bNext)
	}
	if g := got[0]; g.Failures != 0 || g.LastError != "" || g.NextAt.IsZero() {
		t.Errorf("a's row: next %v, failures %d, last error %q; want its schedule, no failure", g.NextAt, g.Failures, g.LastError)
	}
	// Pages: two rows, then the one after the last key, then none.
	page, err := s.CurrentCertificates(ctx, certfleet.CurrentFilter{Limit: 2})
	if err != nil || len(page) != 2 || page[1].IssuanceID != aRSA.ID {
		t.Fatalf("first page = %+v, %v; want a's two", page, err)
	}
	after := certfleet.JobKey{Spec: page[1].Spec, KeyType: page[1].KeyType}
	page, err = s.CurrentCertificates(ctx, certfleet.CurrentFilter{After: after, Limit: 2})
	if err != nil || len(page) != 1 || page[0].IssuanceID != bNew.ID {
		t.Fatalf("page after %s = %+v, %v; want b's", after, page, err)
	}
	after = certfleet.JobKey{Spec: page[0].Spec, KeyType: page[0].KeyType}
	if page, err = s.CurrentCertificates(ctx, certfleet.CurrentFilter{After: after, Limit: 2}); err != nil || len(page) != 0 {
		t.Fatalf("page after %s = %+v, %v; want none", after, page, err)
	}
	// One spec's; those expiring before a time.
	if page, err := s.CurrentCertificates(ctx, certfleet.CurrentFilter{Spec: "a"}); err != nil || len(page) != 2 ||
		page[0].IssuanceID != aEC.ID || page[1].IssuanceID != aRSA.ID {
		t.Fatalf("a's = %+v, %v; want its two", page, err)
	}
	if page, err := s.CurrentCertificates(ctx, certfleet.CurrentFilter{NotAfterBefore: bNew.NotAfter}); err != nil || len(page) != 2 ||
		page[0].IssuanceID != aEC.ID || page[1].IssuanceID != aRSA.ID {
		t.Fatalf("expiring before b's = %+v, %v; want a's two (issued before b's renewal)", page, err)
	}
	if page, err := s.CurrentCertificates(ctx, certfleet.CurrentFilter{Spec: "b", NotAfterBefore: bNew.NotAfter}); err != nil || len(page) != 0 {
		t.Fatalf("b's expiring before its own expiry = %+v, %v; want none", page, err)
	}
	of, err := certfleet.CurrentCertificatesOf(ctx, s, map[certfleet.JobKey]bool{bKey: true, keyOf("a", certfleet.RSA2048): true,
		keyOf("gone", certfleet.ECDSAP256): true})
	if err != nil || len(of) != 2 || of[0].IssuanceID != aRSA.ID || of[1].IssuanceID != bNew.ID {
		t.Fatalf("CurrentCertificatesOf = %+v, %v; want a's RSA and b's (gone is withdrawn)", of, err)
	}
	// EachCurrentCertificate walks them all, a page at a time.
	var seen []int64
	err = certfleet.EachCurrentCertificate(ctx, s, certfleet.CurrentFilter{Limit: 1}, func(c certfleet.CurrentCertificate) error {
		seen = append(seen, c.IssuanceID)
		return nil
	})
	if err != nil || len(seen) != 3 || seen[0] != aEC.ID || seen[2] != bNew.ID {
		t.Fatalf("EachCurrentCertificate = %v, %v; want the three in order", seen, err)
	}
}
