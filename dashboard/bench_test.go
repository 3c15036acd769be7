package dashboard_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/storetest"
)

// BenchmarkList renders list pages of a fleet of 10,000 certificates in a
// real SQLite store (2,000 issued, 100 failing, the rest pending): the
// first page, a status filter, a search and a page deep in the list. Each
// request reads pages from the store (CertificatePage), whatever the
// fleet's size.
//
//	go test -run '^$' -bench BenchmarkList -benchtime 20x ./dashboard
func BenchmarkList(b *testing.B) {
	e := benchFleet(b)
	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)
	for _, bc := range []struct{ name, query string }{
		{"first page", ""},
		{"status=failing", "status=failing"},
		{"q=web-009900", "q=web-009900"},
		{"after web-005000", "after=web-005000"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if r := e.do("GET", "/dashboard/?"+bc.query, c, nil, nil); r.status != http.StatusOK || rows(r.body) == 0 {
					b.Fatalf("status %d, %d rows", r.status, rows(r.body))
				}
			}
		})
	}
}

// BenchmarkViews renders the views of issue 15 over the fleet of
// BenchmarkList with 20,000 audit events: the timeline's first and a late
// page, the audit trail for an operator's admin (paged in the store) and
// for a token that sees one certificate in 100 (filtered in bounded scans),
// and the incidents. Each view reads a bounded amount of the store,
// whatever the fleet's size.
//
//	go test -run '^$' -bench BenchmarkViews -benchtime 20x ./dashboard
func BenchmarkViews(b *testing.B) {
	e := benchFleet(b)
	evs := make([]certfleet.Event, 20000)
	for i := range evs {
		evs[i] = certfleet.Event{At: time.Now().Add(-time.Duration(len(evs)-i) * time.Second), Kind: certfleet.EventRetry, Actor: "cli:root",
			Certificate: fmt.Sprintf("web-%06d", i%10000), KeyType: certfleet.ECDSAP256, Detail: "bench"}
	}
	if err := e.store.RecordEvents(b.Context(), evs); err != nil {
		b.Fatal(err)
	}
	_, admin := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	_, scoped := e.token("team", []string{"*.example.org"}, certfleet.PermReadCerts) // every name: filtered in scans all the same
	_, few := e.token("few", []string{"web-000042.example.org"}, certfleet.PermReadCerts)
	ca, cs, cf := e.login(admin), e.login(scoped), e.login(few)
	for _, bc := range []struct {
		name, path string
		c          *http.Cookie
		marker     string
	}{
		{"timeline first page", "/dashboard/timeline", ca, `class="tl-lane`},
		{"timeline late page", "/dashboard/timeline?after=web-001500/ecdsa-p256", ca, `class="tl-lane`},
		{"audit admin", "/dashboard/audit", ca, `class="event kind-retry"`},
		{"audit scoped", "/dashboard/audit", cs, `class="event kind-retry"`},
		{"audit one name in 10000", "/dashboard/audit", cf, `Only the events`},
		{"incidents", "/dashboard/incidents", ca, `Incidents`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if r := e.do("GET", bc.path, bc.c, nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, bc.marker) {
					b.Fatalf("status %d, no %q", r.status, bc.marker)
				}
			}
		})
	}
}

// benchFleet is 10,000 certificates in a real SQLite store: 2,000 issued,
// 100 failing, the rest pending.
func benchFleet(b *testing.B) *env {
	const n = 10000
	specs := storetest.NewSpecs("web", n)
	e := newEnv(b, specs...)
	ctx := b.Context()
	jobs, err := e.store.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "test", Now: time.Now().Add(time.Second), Lease: time.Hour, Limit: n})
	if err != nil || len(jobs) != n {
		b.Fatalf("claim: %d jobs, %v", len(jobs), err)
	}
	for i, j := range jobs {
		switch {
		case i < 2000:
			sp := specs[i]
			if sp.Name != j.Spec {
				sp, err = e.store.Spec(ctx, j.Spec)
				if err != nil {
					b.Fatal(err)
				}
			}
			_, err = e.store.CompleteIssuance(ctx, "test", storetest.NewIssuance(sp, j.KeyType), certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)},
				certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeIssued})
		case i < 2100:
			err = e.store.FailJob(ctx, j.JobKey, "test", certfleet.Attempt{Instance: "test", StartedAt: time.Now(), FinishedAt: time.Now(),
				Outcome: certfleet.OutcomeFailed, Error: "validation failed", ProblemType: "urn:ietf:params:acme:error:unauthorized"}, time.Now().Add(time.Hour))
		default:
			err = e.store.ReleaseLease(ctx, j.JobKey, "test")
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return e
}
