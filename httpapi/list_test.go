package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/sqlite"
)

func listSpec(name, tenant string, ids ...string) certfleet.CertificateSpec {
	sp := certfleet.CertificateSpec{Name: name, KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256},
		Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceAPI, Tenant: tenant}
	for _, v := range ids {
		sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: v})
	}
	return sp
}

// listAll follows next from path and returns every name listed, in
// order, and the number of pages.
func listAll(t *testing.T, base, secret, path string, between func(page int)) ([]string, int) {
	t.Helper()
	var names []string
	pages := 0
	for path != "" {
		resp, body := httpGet(t, base+path, http.Header{"Authorization": {"Bearer " + secret}})
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		var list httpapi.CertificateList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		for _, c := range list.Certificates {
			names = append(names, c.Name)
		}
		pages++
		if pages > 100 {
			t.Fatal("more than 100 pages: the cursor does not advance")
		}
		path = list.Next
		if between != nil {
			between(pages)
		}
	}
	return names, pages
}

// TestCertificateListPaging (issue 13): GET /v1/certificates pages in the
// store by keyset cursor; the pages hold every certificate in scope once,
// in order, while certificates are added and withdrawn between pages; the
// filters; the tenant scope on every page; and a bad cursor or filter is a
// 400 problem that says what is wrong.
func TestCertificateListPaging(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := httptest.NewServer((&httpapi.Server{Store: st}).Handler())
	t.Cleanup(api.Close)
	admin := mustAdminToken(t, st)
	for _, tn := range []string{"t1", "t2"} {
		if _, err := st.CreateTenant(ctx, certfleet.Tenant{Name: tn, Names: []string{"*." + tn + ".example"}}); err != nil {
			t.Fatal(err)
		}
	}
	var want, want1 []string
	for i := range 30 {
		tenant := []string{"", "t1", "t2"}[i%3]
		host := fmt.Sprintf("h%02d.a.example", i)
		if tenant != "" {
			host = fmt.Sprintf("h%02d.%s.example", i, tenant)
		}
		name := fmt.Sprintf("c%02d", i)
		if _, err := st.PutSpec(ctx, listSpec(name, tenant, host)); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
		if tenant == "t1" {
			want1 = append(want1, name)
		}
	}
	token := func(tenant string, names ...string) string {
		id, secret, hash := certfleet.NewTokenSecret()
		if err := st.CreateToken(ctx, certfleet.Token{ID: id, Description: "list", Names: names, Tenant: tenant,
			Permissions: []certfleet.Permission{certfleet.PermReadCerts}, Hash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		return secret
	}

	// Every certificate once, in order, 7 a page.
	got, pages := listAll(t, api.URL, admin, "/v1/certificates?limit=7", nil)
	if !slices.Equal(got, want) || pages != 5 {
		t.Fatalf("admin pages = %v (%d pages), want %v", got, pages, want)
	}
	// Changes between pages: one added before the cursor (not shown),
	// one after (shown), one after withdrawn (not shown).
	got, _ = listAll(t, api.URL, admin, "/v1/certificates?limit=7", func(page int) {
		if page != 1 {
			return
		}
		if _, err := st.PutSpec(ctx, listSpec("c00a", "", "x0.a.example")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutSpec(ctx, listSpec("c20a", "", "x20.a.example")); err != nil {
			t.Fatal(err)
		}
		if err := st.WithdrawSpec(ctx, "c21", false); err != nil {
			t.Fatal(err)
		}
	})
	wantAfter := slices.Clone(want)
	wantAfter = slices.Insert(wantAfter, 21, "c20a")
	wantAfter = slices.DeleteFunc(wantAfter, func(n string) bool { return n == "c21" })
	if !slices.Equal(got, wantAfter) {
		t.Fatalf("pages with changes between them = %v\nwant %v", got, wantAfter)
	}

	// A tenant's token: its own, on every page; another tenant's filter
	// is refused; the operator filters by tenant.
	t1 := token("t1", "*.t1.example")
	if got, _ := listAll(t, api.URL, t1, "/v1/certificates?limit=3", nil); !slices.Equal(got, want1) {
		t.Fatalf("t1's pages = %v, want %v", got, want1)
	}
	if got, _ := listAll(t, api.URL, admin, "/v1/certificates?limit=4&tenant=t1", nil); !slices.Equal(got, want1) {
		t.Fatalf("admin's pages of t1 = %v, want %v", got, want1)
	}
	resp, body := httpGet(t, api.URL+"/v1/certificates?tenant=t2", http.Header{"Authorization": {"Bearer " + t1}})
	if resp.StatusCode != 403 {
		t.Fatalf("t1 listing t2: %d %s", resp.StatusCode, body)
	}
	assertProblem(t, resp, body, 403)
	// An operator's token covering some names: exactly those, whatever
	// the pages the scan takes to find them.
	some := token("", "*.a.example")
	got, _ = listAll(t, api.URL, some, "/v1/certificates?limit=2", nil)
	var wantSome []string
	for _, n := range slices.Insert(slices.Clone(wantAfter), 1, "c00a") {
		var i int
		if _, err := fmt.Sscanf(n, "c%02d", &i); err == nil && (i%3 == 0 || strings.HasSuffix(n, "a")) {
			wantSome = append(wantSome, n)
		}
	}
	if !slices.Equal(got, wantSome) {
		t.Fatalf("pages of *.a.example = %v, want %v", got, wantSome)
	}
	// Filters.
	if got, _ := listAll(t, api.URL, admin, "/v1/certificates?q=H05.T2", nil); !slices.Equal(got, []string{"c05"}) {
		t.Fatalf("q=h05.t2 = %v", got)
	}
	if got, _ := listAll(t, api.URL, admin, "/v1/certificates?failing=true", nil); len(got) != 0 {
		t.Fatalf("failing = %v, want none", got)
	}
	if got, _ := listAll(t, api.URL, t1, "/v1/certificates?q=a.example", nil); len(got) != 0 {
		t.Fatalf("t1 searching the operator's names = %v, want none", got)
	}

	// Bad cursors and filters: 400 problems saying what is wrong.
	for _, tc := range []struct{ query, says string }{
		{"after=not%20a%20name", "cursor"},
		{"after=" + strings.Repeat("x", 300), "cursor"},
		{"limit=0", "limit"},
		{"failing=maybe", "failing"},
		{"q=a%20b", "q="},
		{"source=bad%20source", "source"},
	} {
		resp, body := httpGet(t, api.URL+"/v1/certificates?"+tc.query, http.Header{"Authorization": {"Bearer " + admin}})
		if resp.StatusCode != 400 {
			t.Errorf("?%s: %d, want 400: %s", tc.query, resp.StatusCode, body)
			continue
		}
		assertProblem(t, resp, body, 400)
		var p httpapi.Problem
		_ = json.Unmarshal(body, &p)
		if !strings.Contains(p.Detail, tc.says) {
			t.Errorf("?%s: detail %q does not say %q", tc.query, p.Detail, tc.says)
		}
	}
}
