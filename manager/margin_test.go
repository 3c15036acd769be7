package manager_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// TestWindowToExpiryRenewsBefore80Percent is issue 16's first finding: a
// CA whose ARI window runs to expiry (Pebble's for short certificates,
// set explicitly here) had renewals placed anywhere in it, up to 98% of
// the lifetime. Every renewal must happen by 80% of the old certificate's
// lifetime.
func TestWindowToExpiryRenewsBefore80Percent(t *testing.T) {
	const n = 20
	e := newTestEnv(t, map[string]pebbleca.Profile{pebbleca.DefaultProfile: {ValidityPeriod: time.Hour}})
	var specs []certfleet.CertificateSpec
	for i := range n {
		specs = append(specs, spec(t, fmt.Sprintf("w%02d", i), certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, fmt.Sprintf("w%02d.certfleet.test", i)))
	}
	e.sync(specs...)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	if rep := mustRunOnce(t, m); rep.Issued != n {
		t.Fatalf("first pass issued %d of %d: %+v", rep.Issued, n, rep.Results)
	}
	type old struct {
		iss      certfleet.Issuance
		limit    time.Time // 80% into its lifetime
		lifetime time.Duration
	}
	olds := make(map[string]old)
	var latest time.Time
	for _, sp := range specs {
		iss, leaf := e.current(sp.Name, certfleet.ECDSAP256)
		if err := e.ca.SetRenewalInfo(t.Context(), leaf, leaf.NotBefore, leaf.NotAfter); err != nil {
			t.Fatalf("set renewal info: %v", err)
		}
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		o := old{iss: iss, lifetime: life, limit: leaf.NotBefore.Add(life * 8 / 10)}
		olds[sp.Name] = o
		if o.limit.After(latest) {
			latest = o.limit
		}
		// Without the window yet, the first look is at half-life at
		// the latest (jittered earlier), never at the CA's poll time.
		if j := e.job(sp.Name, certfleet.ECDSAP256); j.NextAt.After(leaf.NotBefore.Add(life / 2)) {
			t.Errorf("%s: first check at %v, after half-life", sp.Name, j.NextAt)
		}
	}

	// Past half-life the CA's window is asked: its early part renews at
	// once, the rest is deferred, never past 80%. (One pass only: a
	// renewed certificate's successor is dated by Pebble's real clock,
	// half an hour behind this test clock, so it is due again at once and
	// may crowd a pass: passes run until every job was looked at.
	// BENCHMARKS §12 runs it in real time, renewal after renewal.)
	e.clock.Advance(31 * time.Minute)
	for range 10 {
		mustRunOnce(t, m)
		left := 0
		for _, sp := range specs {
			if j := e.job(sp.Name, certfleet.ECDSAP256); j.CurrentID == olds[sp.Name].iss.ID && j.ARIStart.IsZero() {
				left++
			}
		}
		if left == 0 {
			break
		}
	}
	deferred := 0
	for _, sp := range specs {
		o := olds[sp.Name]
		j := e.job(sp.Name, certfleet.ECDSAP256)
		if j.CurrentID != o.iss.ID {
			cur, _ := e.current(sp.Name, certfleet.ECDSAP256)
			t.Logf("%s renewed at %.3f of the old certificate's lifetime", sp.Name, float64(cur.IssuedAt.Sub(o.iss.NotBefore))/float64(o.lifetime))
			continue
		}
		deferred++
		pos := float64(j.NextAt.Sub(o.iss.NotBefore)) / float64(o.lifetime)
		t.Logf("%s renewal scheduled at %.3f of its lifetime", sp.Name, pos)
		if j.ARIStart.IsZero() {
			t.Errorf("%s: the CA's window was not asked", sp.Name)
		}
		if j.NextAt.After(o.limit) {
			t.Errorf("%s: renewal scheduled at %.3f of the lifetime, want at most 0.800", sp.Name, pos)
		}
	}
	if deferred == 0 {
		t.Errorf("every certificate was renewed at half-life: the window's later part was never tried")
	}
}

// TestNoARIJitterSpreadsRenewals: without ARI a fleet issued together was
// scheduled to renew at one moment (issue 16). Its renewal times must be
// spread.
func TestNoARIJitterSpreadsRenewals(t *testing.T) {
	const n = 20
	e := newTestEnv(t, map[string]pebbleca.Profile{pebbleca.DefaultProfile: {ValidityPeriod: time.Hour}})
	var specs []certfleet.CertificateSpec
	for i := range n {
		specs = append(specs, spec(t, fmt.Sprintf("j%02d", i), certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, fmt.Sprintf("j%02d.certfleet.test", i)))
	}
	e.sync(specs...)
	m := e.manager(noARI{e.issuer(e.ca.DirectoryURL(), nil)})
	m.Concurrency = n
	if rep := mustRunOnce(t, m); rep.Issued != n {
		t.Fatalf("issued %d of %d", rep.Issued, n)
	}
	seen := make(map[time.Time]bool)
	lo, hi := time.Time{}, time.Time{}
	for _, sp := range specs {
		_, leaf := e.current(sp.Name, certfleet.ECDSAP256)
		next := e.job(sp.Name, certfleet.ECDSAP256).NextAt
		half := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		if next.After(half) || next.Before(half.Add(-time.Hour/certfleet.JitterFraction)) {
			t.Errorf("%s: next renewal %v outside [half-life - 3m, half-life %v]", sp.Name, next, half)
		}
		seen[next] = true
		if lo.IsZero() || next.Before(lo) {
			lo = next
		}
		if next.After(hi) {
			hi = next
		}
	}
	t.Logf("%d distinct renewal times over %v", len(seen), hi.Sub(lo))
	if len(seen) < n*3/4 || hi.Sub(lo) < time.Minute {
		t.Errorf("%d certificates issued together renew at %d distinct times over %v; want them spread over minutes", n, len(seen), hi.Sub(lo))
	}
}
