package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunNames runs the contract of certfleet.NameIndex (issue 13): a name's
// specs by index, kept in the transaction of every spec write; pages of
// certificates with keyset cursors, stable while certificates are added
// and withdrawn; the listing filters; and, when the store is a
// certfleet.NameWatcher, which names it tells of.
func RunNames(t *testing.T, newStore func(t *testing.T) TenantStore) {
	t.Run("SpecsByName", func(t *testing.T) { testSpecsByName(t, newStore(t)) })
	t.Run("WatchNames", func(t *testing.T) { testWatchNames(t, newStore(t)) })
	t.Run("PageCursorStable", func(t *testing.T) { testPageCursor(t, newStore(t)) })
	t.Run("PageFilters", func(t *testing.T) { testPageFilters(t, newStore(t)) })
	t.Run("PrefixFilter", func(t *testing.T) { testSpecPrefix(t, newStore(t)) })
}

func specNames(specs []certfleet.CertificateSpec) []string {
	out := []string{}
	for _, sp := range specs {
		out = append(out, sp.Name)
	}
	return out
}

func wantByName(t *testing.T, s certfleet.NameIndex, name string, want ...string) {
	t.Helper()
	got, err := s.SpecsByName(t.Context(), name)
	if err != nil {
		t.Fatalf("SpecsByName(%q): %v", name, err)
	}
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(specNames(got), want) {
		t.Fatalf("SpecsByName(%q) = %v, want %v", name, specNames(got), want)
	}
}

func testSpecsByName(t *testing.T, s TenantStore) {
	ctx := t.Context()
	a := tenantSpec("a", "", "a.example", "www.a.example")
	if _, err := s.PutSpec(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "www.a.example", "a")
	wantByName(t, s, "A.example") // exact values only: identifiers are stored normalised
	// A config pack holding the same name: both are found, by spec name.
	pack := NewSpec("pack")
	pack.Identifiers = append(pack.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "a.example"})
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{pack}); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "a.example", "a", "pack")
	wantByName(t, s, "pack.example.org", "pack")
	// A name dropped from a spec leaves the index at once.
	a.Identifiers = a.Identifiers[:1]
	if _, err := s.PutSpec(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "www.a.example")
	wantByName(t, s, "a.example", "a", "pack")
	// Withdrawn: gone; put again: back.
	if err := s.WithdrawSpec(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "a.example", "pack")
	if _, err := s.PutSpec(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "a.example", "a", "pack")
	// A config sync that changes and then drops the pack.
	pack.Identifiers = pack.Identifiers[:1]
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{pack}); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "a.example", "a")
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, nil); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "pack.example.org")
	// A tenant's deletion with withdraw takes its names out.
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "t1", Names: []string{"*.t1.example"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSpec(ctx, tenantSpec("t1web", "t1", "web.t1.example")); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "web.t1.example", "t1web")
	if _, err := s.DeleteTenant(ctx, "t1", true); err != nil {
		t.Fatal(err)
	}
	wantByName(t, s, "web.t1.example")
}

// watchLog collects what a NameWatcher tells.
type watchLog struct {
	mu    sync.Mutex
	names map[string]bool
	all   int
}

func (w *watchLog) add(names []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if names == nil {
		w.all++
		return
	}
	for _, n := range names {
		w.names[n] = true
	}
}

// waitFor waits (bounded) until every name was told.
func (w *watchLog) waitFor(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		missing := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return w.names[n] })
		all := w.all
		w.mu.Unlock()
		if len(missing) > 0 && names[0] == "warm.example" && all > 0 {
			return // connected after the change: told "everything"
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher was not told of %v within 10s", missing)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *watchLog) reset() {
	w.mu.Lock()
	w.names = map[string]bool{}
	w.mu.Unlock()
}

func testWatchNames(t *testing.T, s TenantStore) {
	nw, ok := s.(certfleet.NameWatcher)
	if !ok {
		t.Skip("the store does not tell which names change")
	}
	ctx := t.Context()
	log := &watchLog{names: map[string]bool{}}
	stop := nw.WatchNames(log.add)
	defer stop()
	// Warm-up: a store that must first connect to hear others (LISTEN)
	// says "everything" once connected; wait until it hears a change.
	if _, err := s.PutSpec(ctx, tenantSpec("warm", "", "warm.example")); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "warm.example")
	log.reset()
	a := tenantSpec("a", "", "a.example", "www.a.example")
	if _, err := s.PutSpec(ctx, a); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "a.example", "www.a.example")
	// Dropping a name tells the dropped one too.
	log.reset()
	a.Identifiers = a.Identifiers[1:]
	if _, err := s.PutSpec(ctx, a); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "a.example", "www.a.example")
	log.reset()
	if err := s.WithdrawSpec(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "www.a.example")
	log.reset()
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{NewSpec("cfg")}); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "cfg.example.org")
	// After stop, nothing more.
	stop()
	log.reset()
	if _, err := s.PutSpec(ctx, tenantSpec("b", "", "b.example")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.names["b.example"] {
		t.Fatal("a stopped watcher was still told")
	}
}

// pageAll reads every page of q.Limit, returning the names in order.
func pageNames(t *testing.T, page []certfleet.CertificateListing) []string {
	t.Helper()
	out := []string{}
	for _, c := range page {
		out = append(out, c.Spec.Name)
	}
	return out
}

func mustPage(t *testing.T, s certfleet.NameIndex, q certfleet.CertificateQuery) []certfleet.CertificateListing {
	t.Helper()
	page, err := s.CertificatePage(t.Context(), q)
	if err != nil {
		t.Fatalf("CertificatePage(%+v): %v", q, err)
	}
	return page.Certificates
}

func testPageCursor(t *testing.T, s TenantStore) {
	ctx := t.Context()
	specs := NewSpecs("c", 30)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	q := certfleet.CertificateQuery{Limit: 10}
	p1 := mustPage(t, s, q)
	if got := pageNames(t, p1); len(got) != 10 || got[0] != "c-000000" || got[9] != "c-000009" {
		t.Fatalf("first page = %v", got)
	}
	if len(p1[0].Jobs) != 1 || p1[0].Jobs[0].KeyType != certfleet.ECDSAP256 || p1[0].Jobs[0].Current.IssuanceID != 0 {
		t.Fatalf("first certificate's jobs = %+v", p1[0].Jobs)
	}
	// Between pages: one added before the cursor, one after; one after
	// withdrawn; one just read withdrawn. The next page goes on from the
	// cursor: nothing read twice, nothing still there skipped.
	specs = append(specs, NewSpec("c-000005a"), NewSpec("c-000015a"))
	specs = slices.DeleteFunc(specs, func(sp certfleet.CertificateSpec) bool { return sp.Name == "c-000012" || sp.Name == "c-000009" })
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	q.After = p1[len(p1)-1].Spec.Name
	p2 := pageNames(t, mustPage(t, s, q))
	want := []string{"c-000010", "c-000011", "c-000013", "c-000014", "c-000015", "c-000015a", "c-000016", "c-000017", "c-000018", "c-000019"}
	if !slices.Equal(p2, want) {
		t.Fatalf("second page after changes = %v, want %v", p2, want)
	}
	// A cursor that is no longer (or never was) a certificate still works.
	q.After = "c-000012"
	if got := pageNames(t, mustPage(t, s, q)); got[0] != "c-000013" {
		t.Fatalf("page after a withdrawn cursor starts at %v", got)
	}
	// Withdrawn ones with IncludeDisabled, in place.
	q = certfleet.CertificateQuery{After: "c-000011", Limit: 2, IncludeDisabled: true}
	page := mustPage(t, s, q)
	if got := pageNames(t, page); !slices.Equal(got, []string{"c-000012", "c-000013"}) || !page[0].Spec.Disabled {
		t.Fatalf("with withdrawn = %v (%+v)", got, page[0].Spec)
	}
	// The last page is short; a page after the end is empty.
	q = certfleet.CertificateQuery{After: "c-000025", Limit: 10}
	if got := pageNames(t, mustPage(t, s, q)); !slices.Equal(got, []string{"c-000026", "c-000027", "c-000028", "c-000029"}) {
		t.Fatalf("last page = %v", got)
	}
	q.After = "c-000029"
	if got := mustPage(t, s, q); len(got) != 0 {
		t.Fatalf("page after the end = %v", pageNames(t, got))
	}
	// Every page walked: each live certificate once, in order.
	var all []string
	if err := certfleet.EachCertificate(ctx, s, certfleet.CertificateQuery{Limit: 7}, func(c certfleet.CertificateListing) error {
		all = append(all, c.Spec.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != 30 || !slices.IsSorted(all) {
		t.Fatalf("EachCertificate = %d %v", len(all), all)
	}
	if _, err := s.CertificatePage(ctx, certfleet.CertificateQuery{Limit: -1}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("negative limit: %v, want EINVALID", err)
	}
}

func testPageFilters(t *testing.T, s TenantStore) {
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, certfleet.Tenant{Name: "t1", Names: []string{"*.t1.example"}}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []certfleet.CertificateSpec{
		tenantSpec("shop", "t1", "shop.t1.example", "www.shop.t1.example"),
		tenantSpec("blog", "t1", "blog.t1.example"),
		tenantSpec("own", "", "own.example"),
	} {
		if _, err := s.PutSpec(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	cfg := NewSpec("cfg", certfleet.ECDSAP256, certfleet.RSA2048)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{cfg}); err != nil {
		t.Fatal(err)
	}
	// cfg's ECDSA job issued, its RSA job failing.
	now := time.Now()
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: now.Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 5 {
		t.Fatalf("claim: %d, %v", len(jobs), err)
	}
	ek := certfleet.JobKey{Spec: "cfg", KeyType: certfleet.ECDSAP256}
	iss, err := s.CompleteIssuance(ctx, "o", NewIssuance(cfg, certfleet.ECDSAP256), certfleet.ScheduleUpdate{NextAt: now.Add(time.Hour)},
		certfleet.Attempt{JobKey: ek, Instance: "o", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeIssued})
	if err != nil {
		t.Fatal(err)
	}
	rk := certfleet.JobKey{Spec: "cfg", KeyType: certfleet.RSA2048}
	if err := s.FailJob(ctx, rk, "o", certfleet.Attempt{JobKey: rk, Instance: "o", StartedAt: now, FinishedAt: now, Outcome: certfleet.OutcomeFailed, Error: "boom"}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		q    certfleet.CertificateQuery
		want []string
	}{
		{"all", certfleet.CertificateQuery{}, []string{"blog", "cfg", "own", "shop"}},
		{"tenant", certfleet.CertificateQuery{Tenant: "t1"}, []string{"blog", "shop"}},
		{"tenant page", certfleet.CertificateQuery{Tenant: "t1", After: "blog"}, []string{"shop"}},
		{"unknown tenant", certfleet.CertificateQuery{Tenant: "nobody"}, []string{}},
		{"source", certfleet.CertificateQuery{Source: certfleet.SourceConfig}, []string{"cfg"}},
		{"search identifier", certfleet.CertificateQuery{Search: "WWW.shop"}, []string{"shop"}},
		{"search name", certfleet.CertificateQuery{Search: "BLOG"}, []string{"blog"}},
		{"search domain", certfleet.CertificateQuery{Search: "shop.t1.example"}, []string{"shop"}},
		{"search label", certfleet.CertificateQuery{Search: "t1"}, []string{"blog", "shop"}},
		{"search parent domain", certfleet.CertificateQuery{Search: "example"}, []string{"blog", "cfg", "own", "shop"}},
		{"search is not a substring", certfleet.CertificateQuery{Search: "lo"}, []string{}},
		{"search wildcard characters are literal", certfleet.CertificateQuery{Search: "%"}, []string{}},
		{"search in tenant", certfleet.CertificateQuery{Tenant: "t1", Search: "own"}, []string{}},
		{"failing", certfleet.CertificateQuery{Failing: true}, []string{"cfg"}},
		{"failing in tenant", certfleet.CertificateQuery{Tenant: "t1", Failing: true}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pageNames(t, mustPage(t, s, tc.q)); !slices.Equal(got, tc.want) {
				t.Fatalf("%+v: %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	page := mustPage(t, s, certfleet.CertificateQuery{Source: certfleet.SourceConfig})
	if len(page) != 1 || len(page[0].Jobs) != 2 {
		t.Fatalf("cfg listing = %+v", page)
	}
	e, r := page[0].Jobs[0], page[0].Jobs[1]
	if e.KeyType != certfleet.ECDSAP256 || e.Current.IssuanceID != iss.ID || e.Current.Serial != iss.Serial ||
		!e.Current.NotAfter.Equal(iss.NotAfter.Truncate(time.Microsecond)) && e.Current.NotAfter.Sub(iss.NotAfter).Abs() > timeSlack ||
		e.CurrentRevision != cfg.Revision(certfleet.ECDSAP256) || e.TargetRevision != e.CurrentRevision || e.ChainPEM != nil {
		t.Fatalf("issued job = %+v, want issuance %d %s", e, iss.ID, iss.Serial)
	}
	if r.KeyType != certfleet.RSA2048 || r.Failures != 1 || r.LastError != "boom" || r.Current.IssuanceID != 0 || r.LastErrorAt.IsZero() {
		t.Fatalf("failing job = %+v", r)
	}
	page = mustPage(t, s, certfleet.CertificateQuery{Source: certfleet.SourceConfig, Chains: true})
	if got := page[0].Jobs[0].ChainPEM; string(got) != string(iss.ChainPEM) {
		t.Fatalf("chain with Chains = %q", got)
	}
}

func testSpecPrefix(t *testing.T, s TenantStore) {
	ctx := t.Context()
	specs := []certfleet.CertificateSpec{NewSpec("pack-a-1"), NewSpec("pack-a-2"), NewSpec("pack-ab-1"), NewSpec("pack-b-1"), NewSpec("pack-a")}
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Specs(ctx, certfleet.SpecFilter{Prefix: "pack-a-"})
	if err != nil || !slices.Equal(specNames(got), []string{"pack-a-1", "pack-a-2"}) {
		t.Fatalf("Specs(prefix pack-a-) = %v, %v", specNames(got), err)
	}
}
