package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// testListingStatus is the status filter's matrix (issue 13): one
// certificate in each state a job can be in, alone and combined with a
// second key type, listed with each status under the default warning
// window and a fixed one. The store's filter (CertificateQuery.Status)
// must select exactly what the hand-written table says, and what
// CertificateListing.Status says of the unfiltered rows; a status the
// store judged wrongly would hide a certificate from every filter.
func testListingStatus(t *testing.T, s TenantStore) {
	ctx := t.Context()
	now := time.Now()
	day := 24 * time.Hour
	type validity struct{ before, after time.Duration } // from now
	const (
		issue     = iota + 1 // issued, validity v
		fail                 // the last attempt failed
		lease                // issued, then claimed again: leased now
		order                // issued, then an order in flight
		revise               // issued, then the spec changed
		unwritten            // issued, then writing it failed
		renew                // issued expired, then renewed (v)
		forget               // never claimed: pending
	)
	type key struct {
		kt    certfleet.KeyType
		steps []int
		v     validity
	}
	long := validity{-day, 89 * day}                  // 88 days left: ok
	near := validity{-80 * day, 10 * day}             // 10 of 90 days left: expiring by the cap (14 days), not by a fixed 5 days
	third := validity{-2 * day, 22 * time.Hour}       // 22 h of 70 h left: within a third of its life
	short := validity{-time.Hour, 2 * day}            // 48 h of 49 h left: within the cap, not within a third
	half := validity{-30 * time.Hour, 20 * time.Hour} // 20 h of 50 h left: within half of its life, not a third
	gone := validity{-90 * day, -time.Hour}           // expired an hour ago
	ec, rsa := certfleet.ECDSAP256, certfleet.RSA2048
	cases := []struct {
		name           string
		keys           []key
		want, wantFix5 string // default window; fixed 5 days
	}{
		{"ok", []key{{ec, []int{issue}, long}}, certfleet.ListingOK, certfleet.ListingOK},
		{"near", []key{{ec, []int{issue}, near}}, certfleet.ListingExpiring, certfleet.ListingOK},
		{"third", []key{{ec, []int{issue}, third}}, certfleet.ListingExpiring, certfleet.ListingExpiring},
		{"short", []key{{ec, []int{issue}, short}}, certfleet.ListingOK, certfleet.ListingExpiring},
		{"half", []key{{ec, []int{issue}, half}}, certfleet.ListingOK, certfleet.ListingExpiring},
		{"gone", []key{{ec, []int{issue}, gone}}, certfleet.ListingExpired, certfleet.ListingExpired},
		{"renewed", []key{{ec, []int{issue, renew}, long}}, certfleet.ListingOK, certfleet.ListingOK},
		{"failed", []key{{ec, []int{fail}, long}}, certfleet.ListingFailing, certfleet.ListingFailing},
		{"issued-failed", []key{{ec, []int{issue, fail}, long}}, certfleet.ListingFailing, certfleet.ListingFailing},
		{"near-failed", []key{{ec, []int{issue, fail}, near}}, certfleet.ListingExpiring, certfleet.ListingFailing},
		{"unwritten", []key{{ec, []int{issue, unwritten}, long}}, certfleet.ListingFailing, certfleet.ListingFailing},
		{"never", []key{{ec, []int{forget}, long}}, certfleet.ListingPending, certfleet.ListingPending},
		{"leased", []key{{ec, []int{issue, lease}, long}}, certfleet.ListingRenewing, certfleet.ListingRenewing},
		{"ordering", []key{{ec, []int{issue, order}, long}}, certfleet.ListingRenewing, certfleet.ListingRenewing},
		{"revised", []key{{ec, []int{issue, revise}, long}}, certfleet.ListingRenewing, certfleet.ListingRenewing},
		{"two-ok-failed", []key{{ec, []int{issue}, long}, {rsa, []int{fail}, long}}, certfleet.ListingFailing, certfleet.ListingFailing},
		{"two-pending-gone", []key{{ec, []int{forget}, long}, {rsa, []int{issue}, gone}}, certfleet.ListingExpired, certfleet.ListingExpired},
		{"two-ok-pending", []key{{ec, []int{issue}, long}, {rsa, []int{forget}, long}}, certfleet.ListingPending, certfleet.ListingPending},
		{"two-renewing-ok", []key{{ec, []int{issue, lease}, long}, {rsa, []int{issue}, long}}, certfleet.ListingRenewing, certfleet.ListingRenewing},
		{"two-failed-near", []key{{ec, []int{fail}, long}, {rsa, []int{issue}, near}}, certfleet.ListingExpiring, certfleet.ListingFailing},
	}
	specs := make([]certfleet.CertificateSpec, len(cases))
	for i, c := range cases {
		var kts []certfleet.KeyType
		for _, k := range c.keys {
			kts = append(kts, k.kt)
		}
		specs[i] = NewSpec("st-"+c.name, kts...)
	}
	// Filler the filters must skip: pending certificates around them.
	specs = append(specs, NewSpecs("st-filler", 30)...)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	claim := func(k certfleet.JobKey) {
		t.Helper()
		jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: now.Add(time.Second), Lease: time.Hour, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.JobKey == k {
				return
			}
		}
		t.Fatalf("%v was not claimed", k)
	}
	// Every job not to stay pending is claimed once here; each step that
	// needs the job claimed again makes it due first.
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: now.Add(time.Second), Lease: time.Hour, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	claimed := map[certfleet.JobKey]bool{}
	for _, j := range jobs {
		claimed[j.JobKey] = true
	}
	issued := func(sp certfleet.CertificateSpec, kt certfleet.KeyType, v validity, next time.Time) {
		t.Helper()
		iss := NewIssuance(sp, kt)
		iss.NotBefore, iss.NotAfter = now.Add(v.before), now.Add(v.after)
		att := certfleet.Attempt{JobKey: certfleet.JobKey{Spec: sp.Name, KeyType: kt}, Instance: "o", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeIssued}
		if _, err := s.CompleteIssuance(ctx, "o", iss, certfleet.ScheduleUpdate{NextAt: next}, att); err != nil {
			t.Fatalf("issue %s %s: %v", sp.Name, kt, err)
		}
	}
	var revised []int
	for i, c := range cases {
		sp := specs[i]
		for _, k := range c.keys {
			jk := certfleet.JobKey{Spec: sp.Name, KeyType: k.kt}
			if !claimed[jk] {
				t.Fatalf("%v was not claimed", jk)
			}
			later := now.Add(30 * day)
			for n, step := range k.steps {
				// The job is due again when another step follows that
				// needs a claim.
				next := later
				if n+1 < len(k.steps) && k.steps[n+1] != revise && k.steps[n+1] != unwritten {
					next = now.Add(-time.Minute)
				}
				switch step {
				case issue:
					v := k.v
					if slices.Contains(k.steps, renew) {
						v = gone
					}
					issued(sp, k.kt, v, next)
				case renew:
					claim(jk)
					issued(sp, k.kt, k.v, later)
				case fail:
					if n > 0 {
						claim(jk)
					}
					att := certfleet.Attempt{JobKey: jk, Instance: "o", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeFailed, Error: "boom"}
					if err := s.FailJob(ctx, jk, "o", att, later); err != nil {
						t.Fatal(err)
					}
				case lease:
					claim(jk)
				case order:
					claim(jk)
					if err := s.SetPendingOrder(ctx, jk, "o", "https://ca.example/order/x", nil); err != nil {
						t.Fatal(err)
					}
				case unwritten:
					if err := s.SetDeployState(ctx, jk, certfleet.DeployState{Error: "write: permission denied", Failures: 1, FailedAt: now, NextAt: later}); err != nil {
						t.Fatal(err)
					}
				case revise:
					revised = append(revised, i)
				case forget:
				}
			}
		}
	}
	for _, i := range revised {
		specs[i].Identifiers = append(specs[i].Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "more." + specs[i].Identifiers[0].Value})
	}
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}

	defaultW := certfleet.ExpiryWindow{Max: 14 * day}
	fixedW := certfleet.ExpiryWindow{Fixed: 5 * day, Max: 14 * day}
	for _, w := range []struct {
		name   string
		window certfleet.ExpiryWindow
		want   func(i int) string
	}{
		{"default window", defaultW, func(i int) string { return cases[i].want }},
		{"fixed window", fixedW, func(i int) string { return cases[i].wantFix5 }},
	} {
		// The reference, on the unfiltered rows.
		all, _ := walkListings(t, s, certfleet.CertificateQuery{Search: "example.org", Limit: 7})
		ref := map[string]string{}
		for _, c := range all {
			ref[c.Spec.Name] = c.Status(now, w.window)
		}
		for i, c := range cases {
			if got := ref[specs[i].Name]; got != w.want(i) {
				t.Errorf("%s: CertificateListing.Status of %s = %s, want %s", w.name, c.name, got, w.want(i))
			}
		}
		for _, st := range certfleet.ListingStatuses {
			var want []string
			for name, s := range ref {
				if s == st {
					want = append(want, name)
				}
			}
			slices.Sort(want)
			for _, q := range []certfleet.CertificateQuery{
				{Status: st, Limit: 3},
				{Status: st, Limit: 2, Before: "~"},
				{Status: st, Search: "example.org", Limit: 4},
				{Status: st, Failing: st == certfleet.ListingFailing, Source: certfleet.SourceConfig, Limit: 5},
			} {
				q.Now, q.Warning = now, w.window
				got, _ := walk(t, s, q)
				if got == nil {
					got = []string{}
				}
				if want == nil {
					want = []string{}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: status %s (%+v): %v, want %v", w.name, st, q, got, want)
				}
			}
		}
	}
	if _, err := s.CertificatePage(ctx, certfleet.CertificateQuery{Status: "fine"}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Errorf("status fine: %v, want EINVALID", err)
	}
}

// walkListings is walk returning the rows.
func walkListings(t *testing.T, s certfleet.NameIndex, q certfleet.CertificateQuery) ([]certfleet.CertificateListing, int) {
	t.Helper()
	var all []certfleet.CertificateListing
	for pages := 1; ; pages++ {
		page, err := s.CertificatePage(t.Context(), q)
		if err != nil {
			t.Fatalf("CertificatePage(%+v): %v", q, err)
		}
		all = append(all, page.Certificates...)
		if page.Next == "" {
			return all, pages
		}
		if pages > 10000 {
			t.Fatalf("walk %+v does not end", q)
		}
		q.After = page.Next
	}
}
