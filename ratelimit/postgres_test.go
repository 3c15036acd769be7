package ratelimit_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/ratelimit"
	"github.com/certfleet/certfleet/solver/http01"
)

// TestBudgetAcrossInstances: three instances on one PostgreSQL database,
// each with its own store handle, manager and budget, work through 60
// certificates under one registered domain at once with a budget of 20:
// between them they place exactly 20 orders (the CA saw 20) and defer the
// other 40 — no two instances took the same last slot.
func TestBudgetAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := t.Context()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pebbleca.Start(ctx, pebbleca.Config{HTTPPort: httpLn.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	first := open()
	serveCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { (&http01.Responder{Store: first}).Serve(serveCtx, httpLn) })

	specs := make([]certfleet.CertificateSpec, 60)
	for i := range specs {
		specs[i] = spec(t, fmt.Sprintf("m%02d", i), certfleet.ChallengeHTTP01, fmt.Sprintf("m%d.example.com", i))
		specs[i].Source = certfleet.SourceConfig
	}
	if _, err := first.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	limits := ratelimit.Limits{CertificatesPerDomain: ratelimit.Limit{Count: 20, Window: 7 * 24 * time.Hour}}
	reports := make([]manager.Report, 3)
	var run sync.WaitGroup
	for k := range reports {
		s := first
		if k > 0 {
			s = open()
		}
		iss, err := acmeissuer.New(acmeissuer.Config{
			DirectoryURL: ca.DirectoryURL(), TrustedRootsPEM: ca.TLSRootPEM(), Accounts: s,
			Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01.Solver{Store: s}},
			PollInterval: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		m := &manager.Manager{Store: s, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
			Concurrency: 2, Instance: fmt.Sprintf("instance-%d", k), Logger: testLogger(t), Rand: func() float64 { return 0 },
			Budget: &ratelimit.Budget{Store: s,
				Accounts: map[string]ratelimit.Account{certfleet.DefaultAccount: {CA: ca.DirectoryURL(), Limits: limits}}}}
		run.Go(func() { reports[k] = runOnce(t, m) })
	}
	run.Wait()
	issued, deferred := 0, 0
	for k, rep := range reports {
		if rep.Failed != 0 {
			t.Fatalf("instance %d: %s", k, summary(rep))
		}
		issued += rep.Issued
		deferred += rep.Deferred
	}
	if issued != 20 || deferred != 40 || ca.NewOrders() != 20 {
		t.Fatalf("issued %d, deferred %d, CA orders %d; want 20, 40, 20", issued, deferred, ca.NewOrders())
	}
}
