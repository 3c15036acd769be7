package multitest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/solver/http01"
)

func TestMain(m *testing.M) {
	// Pebble reads this in its constructors: no random validation delay.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// cluster is one Pebble, one database, and an http-01 responder that
// answers from the database (so it answers every instance's tokens, as a
// load balancer in front of the instances would).
type cluster struct {
	t   *testing.T
	ca  *pebbleca.CA
	dsn string
	db  *postgres.Store // the responder's and the test's own view
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dsn := pgtest.DSN(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() { ca.Close() })
	db := openStore(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); (&http01.Responder{Store: db}).Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &cluster{t: t, ca: ca, dsn: dsn, db: db}
}

func openStore(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// instance is one certfleet instance: its own pool, issuer and manager.
// instanceConcurrency is each test instance's Concurrency. Three instances
// put 9 orders in flight: Pebble v2.10.1 wedges near 16 (a lock-order
// deadlock in its in-memory store), and a CI run with 12 under the race
// detector on a loaded machine wedged once (2026-11-23).
const instanceConcurrency = 3

func newInstance(t testing.TB, dsn, directory string, caRoot []byte, name string, solver certfleet.Solver) *manager.Manager {
	t.Helper()
	store := openStore(t, dsn)
	if solver == nil {
		tokens := &http01.Tokens{}
		solver = &http01.Solver{Store: store, Tokens: tokens}
	}
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL:    directory,
		TrustedRootsPEM: caRoot,
		Accounts:        store,
		Solvers:         map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: solver},
		PollInterval:    50 * time.Millisecond,
		Contact:         []string{"test@certfleet.test"},
	})
	if err != nil {
		t.Fatalf("new issuer: %v", err)
	}
	return &manager.Manager{
		Store:        store,
		Issuers:      map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Instance:     name,
		Concurrency:  instanceConcurrency,
		PollInterval: 5 * time.Second,
		Logger:       testLogger(t).With("instance", name),
	}
}

func specs(prefix string, n int) []certfleet.CertificateSpec {
	out := make([]certfleet.CertificateSpec, n)
	for i := range out {
		name := fmt.Sprintf("%s-%04d", prefix, i)
		out[i] = certfleet.CertificateSpec{
			Name:        name,
			Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: name + ".certfleet.test"}},
			KeyTypes:    []certfleet.KeyType{certfleet.ECDSAP256},
			Challenge:   certfleet.ChallengeHTTP01,
			Source:      certfleet.SourceConfig,
		}
	}
	return out
}

// waitIssued waits until every job has a certificate, failing t at deadline.
func (c *cluster) waitIssued(deadline time.Time) {
	c.t.Helper()
	for {
		jobs, err := c.db.Jobs(c.t.Context(), certfleet.JobFilter{})
		if err != nil {
			c.t.Fatal(err)
		}
		left, leased, pending := 0, 0, 0
		var example certfleet.Job
		for _, j := range jobs {
			if j.CurrentID == 0 {
				left++
				example = j
			}
			if j.LeaseOwner != "" {
				leased++
			}
			if j.PendingOrderURL != "" {
				pending++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d certificates not issued in time; e.g. %s: failures %d, last error %q, lease %q; "+
				"%d jobs leased, %d with an order in flight; Pebble: %d POSTs, %d new orders, %d finalized "+
				"(a stuck Pebble shows leased jobs and POSTs that stopped growing)",
				left, len(jobs), example.JobKey, example.Failures, example.LastError, example.LeaseOwner,
				leased, pending, c.ca.Posts(), c.ca.NewOrders(), c.ca.Finalizations())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkExactlyOnce checks that every spec has exactly one issuance and that
// Pebble placed and finalized exactly one order per name.
func (c *cluster) checkExactlyOnce(n int) {
	c.t.Helper()
	iss, err := c.db.Issuances(c.t.Context(), certfleet.IssuanceFilter{})
	if err != nil {
		c.t.Fatal(err)
	}
	per := map[string]int{}
	for _, i := range iss {
		per[i.Spec]++
	}
	for name, k := range per {
		if k != 1 {
			c.t.Errorf("%s was issued %d times", name, k)
		}
	}
	if len(per) != n || len(iss) != n {
		c.t.Errorf("%d issuances of %d specs, want %d of %d", len(iss), len(per), n, n)
	}
	if got := c.ca.NewOrders(); got != int64(n) {
		c.t.Errorf("Pebble saw %d new orders, want %d (one per name)", got, n)
	}
	if got := c.ca.Finalizations(); got != int64(n) {
		c.t.Errorf("Pebble finalized %d orders, want %d (one per name)", got, n)
	}
}

// TestThreeInstances: three instances (separate managers, pools and
// issuers) on one database issue 300 names; each name gets exactly one
// certificate and one order at the CA, and every instance does a share.
func TestThreeInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("issues 300 certificates")
	}
	c := newCluster(t)
	const n = 300
	if _, err := c.db.SyncSpecs(t.Context(), certfleet.SourceConfig, specs("multi", n)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 3 {
		m := newInstance(t, c.dsn, c.ca.DirectoryURL(), c.ca.TLSRootPEM(), fmt.Sprintf("instance-%d", i+1), nil)
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	c.waitIssued(time.Now().Add(3 * time.Minute))
	took := time.Since(start)
	cancel()
	wg.Wait()
	c.checkExactlyOnce(n)

	// Every instance took part (a store that let one instance claim
	// everything would still be correct, but not redundant).
	byInstance := map[string]int{}
	jobs, err := c.db.Jobs(t.Context(), certfleet.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		as, err := c.db.Attempts(t.Context(), j.JobKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Outcome == certfleet.OutcomeIssued {
				byInstance[a.Instance]++
			}
		}
	}
	if len(byInstance) != 3 {
		t.Errorf("issued by %v; want all three instances to take part", byInstance)
	}
	t.Logf("%d certificates by three instances in %v; per instance %v", n, took.Round(time.Millisecond), byInstance)
}
