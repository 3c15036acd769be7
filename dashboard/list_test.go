package dashboard_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/dashboard"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// pagedOnly is the real store, refusing the reads of everything that the
// list used to make (every spec, every job, every agent report) and
// counting its store pages.
type pagedOnly struct {
	*sqlite.Store
	t     *testing.T
	pages atomic.Int32
}

func (s *pagedOnly) Specs(ctx context.Context, f certfleet.SpecFilter) ([]certfleet.CertificateSpec, error) {
	if f.Name == "" && f.Prefix == "" {
		s.t.Errorf("every spec read (%+v)", f)
	}
	return s.Store.Specs(ctx, f)
}

func (s *pagedOnly) Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error) {
	if f.Spec == "" {
		s.t.Errorf("every job read (%+v)", f)
	}
	return s.Store.Jobs(ctx, f)
}

func (s *pagedOnly) AgentReports(ctx context.Context, f certfleet.AgentReportFilter) ([]certfleet.AgentReport, error) {
	if f.Certificate == "" {
		s.t.Errorf("every agent report read (%+v)", f)
	}
	return s.Store.AgentReports(ctx, f)
}

func (s *pagedOnly) CertificatePage(ctx context.Context, q certfleet.CertificateQuery) (certfleet.ListingPage, error) {
	s.pages.Add(1)
	return s.Store.CertificatePage(ctx, q)
}

// TestListReadsPages is issue 13: the list read every spec and job the
// token may see to count statuses and page by number (1.76 s at 100,000
// certificates). Now every list page, filter and cursor reads a few
// store pages, whatever the fleet's size.
func TestListReadsPages(t *testing.T) {
	specs := storetest.NewSpecs("web", 300)
	e := newEnv(t, specs...)
	for _, i := range []int{3, 150, 299} {
		e.fail(specs[i], "validation failed", "urn:ietf:params:acme:error:unauthorized")
	}
	e.issue(specs[0], nil)
	if err := e.store.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "lb1", Certificate: specs[0].Name, KeyType: certfleet.ECDSAP256,
		ReportedAt: time.Now(), TokenID: "tok_x"}); err != nil {
		t.Fatal(err)
	}
	store := &pagedOnly{Store: e.store, t: t}
	e.serve(&dashboard.Server{Store: store})
	_, secret := e.token("ops", []string{"*"}, certfleet.PermAdmin)
	c := e.login(secret)
	for _, path := range []string{"/dashboard/", "/dashboard/?after=web-000100", "/dashboard/?before=web-000200",
		"/dashboard/?status=failing", "/dashboard/?status=expired", "/dashboard/?q=example.org&status=ok", "/dashboard/?q=web-000150"} {
		store.pages.Store(0)
		r := e.do("GET", path, c, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, r.status)
		}
		if n := store.pages.Load(); n < 1 || n > 4 {
			t.Errorf("GET %s read %d store pages, want 1 to 4", path, n)
		}
	}
}
