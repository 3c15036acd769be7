package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunListing is the contract of the listings at scale (issue 13): every
// filter pages by cursor in both directions, a page's Next always leads
// on to the rest (a page may be short when a filter is rare among what it
// examined), the search finds whole names and labels and follows a spec's
// names as they change, a walk stays exact while certificates are added,
// and the status filter selects what CertificateListing.Status says.
func RunListing(t *testing.T, newStore func(t *testing.T) TenantStore) {
	t.Run("Filters", func(t *testing.T) { testListingFilters(t, newStore(t)) })
	t.Run("Backwards", func(t *testing.T) { testListingBackwards(t, newStore(t)) })
	t.Run("ConcurrentInserts", func(t *testing.T) { testListingConcurrent(t, newStore(t)) })
	t.Run("PageExtras", func(t *testing.T) { testPageExtras(t, newStore(t)) })
	t.Run("Status", func(t *testing.T) { testListingStatus(t, newStore(t)) })
}

// listingFleet puts n config specs s-000000… and returns them; those
// with i%800 == 7 have a failing job, those at rare an extra identifier
// rare.example.net.
func listingFleet(t *testing.T, s TenantStore, n int, rare ...int) []certfleet.CertificateSpec {
	t.Helper()
	ctx := t.Context()
	specs := NewSpecs("s", n)
	for _, i := range rare {
		specs[i].Identifiers = append(specs[i].Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "rare.example.net"})
	}
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: now.Add(time.Second), Lease: time.Hour, Limit: n})
	if err != nil || len(jobs) != n {
		t.Fatalf("claim: %d, %v", len(jobs), err)
	}
	for i := 7; i < n; i += 800 {
		k := certfleet.JobKey{Spec: specs[i].Name, KeyType: certfleet.ECDSAP256}
		if err := s.FailJob(ctx, k, "o", certfleet.Attempt{JobKey: k, Instance: "o", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeFailed, Error: "boom"}, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	return specs
}

// walk follows Next from q, checking every page's size and order, and
// returns the names in order and the number of pages.
func walk(t *testing.T, s certfleet.NameIndex, q certfleet.CertificateQuery) ([]string, int) {
	t.Helper()
	var all []string
	for pages := 1; ; pages++ {
		page, err := s.CertificatePage(t.Context(), q)
		if err != nil {
			t.Fatalf("CertificatePage(%+v): %v", q, err)
		}
		names := pageNames(t, page.Certificates)
		if len(names) > q.Limit || !slices.IsSorted(names) {
			t.Fatalf("page %+v = %v: more than the limit or out of order", q, names)
		}
		if q.Before != "" {
			all = append(names, all...)
		} else {
			all = append(all, names...)
		}
		if page.Next == "" {
			return all, pages
		}
		if pages > 10000 {
			t.Fatalf("walk %+v does not end", q)
		}
		if q.Before != "" {
			q.Before = page.Next
		} else {
			q.After = page.Next
		}
	}
}

func testListingFilters(t *testing.T, s TenantStore) {
	ctx := t.Context()
	const n = 2500
	specs := listingFleet(t, s, n, 100, 1500, 2400)
	names := func(is ...int) []string {
		out := []string{}
		for _, i := range is {
			out = append(out, specs[i].Name)
		}
		return out
	}
	every := names()
	for i := range specs {
		every = append(every, specs[i].Name)
	}
	for _, tc := range []struct {
		name string
		q    certfleet.CertificateQuery
		want []string
	}{
		{"all", certfleet.CertificateQuery{Limit: 100}, every},
		{"failing", certfleet.CertificateQuery{Failing: true, Limit: 3}, names(7, 807, 1607, 2407)},
		{"rare term", certfleet.CertificateQuery{Search: "rare.example.net", Limit: 2}, names(100, 1500, 2400)},
		{"rare label", certfleet.CertificateQuery{Search: "RARE", Limit: 2}, names(100, 1500, 2400)},
		{"top-level domain", certfleet.CertificateQuery{Search: "net.", Limit: 50}, names(100, 1500, 2400)},
		{"common term", certfleet.CertificateQuery{Search: "example.org", Limit: 500}, every},
		{"a name", certfleet.CertificateQuery{Search: "s-001234", Limit: 10}, names(1234)},
		{"a name's first labels", certfleet.CertificateQuery{Search: "s-001234.example", Limit: 10}, names(1234)},
		{"no partial label", certfleet.CertificateQuery{Search: "s-00123", Limit: 10}, names()},
		// Rare among the driver's rows: short pages, Next leads on.
		{"common term, failing", certfleet.CertificateQuery{Search: "example.org", Failing: true, Limit: 10}, names(7, 807, 1607, 2407)},
		{"source, failing", certfleet.CertificateQuery{Source: certfleet.SourceConfig, Failing: true, Limit: 10}, names(7, 807, 1607, 2407)},
		{"other source", certfleet.CertificateQuery{Source: certfleet.SourceAPI, Limit: 10}, names()},
		{"after a cursor", certfleet.CertificateQuery{Failing: true, After: specs[807].Name, Limit: 10}, names(1607, 2407)},
		{"after a cursor, term", certfleet.CertificateQuery{Search: "rare", After: specs[100].Name, Limit: 10}, names(1500, 2400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := walk(t, s, tc.q)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("%+v: %d %v…, want %d %v…", tc.q, len(got), got[:min(len(got), 5)], len(tc.want), tc.want[:min(len(tc.want), 5)])
			}
		})
	}
	// A full page says so: Next is its last certificate.
	page, err := s.CertificatePage(ctx, certfleet.CertificateQuery{Failing: true, Limit: 2})
	if err != nil || len(page.Certificates) != 2 || page.Next != specs[807].Name {
		t.Fatalf("failing, 2 of 4 = %v next %q, %v", pageNames(t, page.Certificates), page.Next, err)
	}
	// The terms follow the spec: an identifier dropped is no longer
	// found, a withdrawn spec neither, one added is.
	specs[1500].Identifiers = specs[1500].Identifiers[:1]
	specs[5].Identifiers = append(specs[5].Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "*.rare.example.net"})
	specs[5].Challenge = certfleet.ChallengeDNS01
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, slices.Delete(slices.Clone(specs), 100, 101)); err != nil {
		t.Fatal(err)
	}
	if got, _ := walk(t, s, certfleet.CertificateQuery{Search: "rare.example.net", Limit: 10}); !slices.Equal(got, names(5, 2400)) {
		t.Fatalf("after changes: %v, want %v", got, names(5, 2400))
	}
	// A search for a wildcard is one for its domain (NormalizeSearch).
	if got, _ := walk(t, s, certfleet.CertificateQuery{Search: "*.rare.example.net", Limit: 10}); !slices.Equal(got, names(5, 2400)) {
		t.Fatalf("a wildcard: %v, want %v", got, names(5, 2400))
	}
	if got, _ := walk(t, s, certfleet.CertificateQuery{Search: "s-000100", Limit: 10}); len(got) != 0 {
		t.Fatalf("a withdrawn spec is found: %v", got)
	}
}

func testListingBackwards(t *testing.T, s TenantStore) {
	specs := listingFleet(t, s, 1200)
	page, err := s.CertificatePage(t.Context(), certfleet.CertificateQuery{Before: "s-000050", Limit: 10})
	if got := pageNames(t, page.Certificates); err != nil || len(got) != 10 || got[0] != "s-000040" || got[9] != "s-000049" || page.Next != "s-000040" {
		t.Fatalf("before s-000050 = %v next %q, %v", got, page.Next, err)
	}
	got, _ := walk(t, s, certfleet.CertificateQuery{Before: "s-001100", Limit: 30})
	if len(got) != 1100 || got[0] != specs[0].Name || got[1099] != specs[1099].Name {
		t.Fatalf("walked back from s-001100: %d, %v…%v", len(got), got[:3], got[len(got)-3:])
	}
	got, _ = walk(t, s, certfleet.CertificateQuery{Before: "s-001100", Failing: true, Limit: 1})
	if want := []string{specs[7].Name, specs[807].Name}; !slices.Equal(got, want) {
		t.Fatalf("failing, backwards: %v, want %v", got, want)
	}
	got, _ = walk(t, s, certfleet.CertificateQuery{Before: "s-001100", Search: "example.org", Failing: true, Limit: 1})
	if want := []string{specs[7].Name, specs[807].Name}; !slices.Equal(got, want) {
		t.Fatalf("term and failing, backwards: %v, want %v", got, want)
	}
}

// testListingConcurrent walks every page while other certificates are
// added between (and during) the pages: each certificate that was there
// all along is listed exactly once, in order.
func testListingConcurrent(t *testing.T, s TenantStore) {
	ctx := t.Context()
	specs := listingFleet(t, s, 600)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sp := tenantSpec(fmt.Sprintf("s-%06d-new", (i*37)%600), "", fmt.Sprintf("new-%d.example.org", i))
			if _, err := s.PutSpec(ctx, sp); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for _, q := range []certfleet.CertificateQuery{{Limit: 25}, {Search: "example.org", Limit: 25}, {Before: "~", Limit: 25}} {
		got, _ := walk(t, s, q)
		seen := map[string]int{}
		for i, n := range got {
			seen[n]++
			if i > 0 && got[i-1] >= n {
				t.Fatalf("%+v: %q after %q", q, n, got[i-1])
			}
		}
		for _, sp := range specs {
			if seen[sp.Name] != 1 {
				t.Fatalf("%+v: %s listed %d times", q, sp.Name, seen[sp.Name])
			}
		}
	}
	close(stop)
	wg.Wait()
}
