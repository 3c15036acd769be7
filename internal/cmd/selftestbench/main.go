// Command selftestbench measures, for BENCHMARKS.md §11 (issue 14), what
// keeping N names waiting costs: N single-name http-01 certificates whose
// names resolve (through an in-process DNS server, the configured
// resolver) to an address where nothing answers the probe, run by the
// real scheduler (manager.Manager.Run) with the real self-tester
// (package selftest) over a SQLite store. It counts the self-tests run,
// the scheduler's CPU (getrusage of the process), the store's write
// transactions and statements (a counting sqlstore.DB), and the orders
// attempted (which must stay 0).
//
// The reference, measured in the same run on a fresh store: the same names
// with a tester that answers "waiting" at once (no DNS, no probe token, no
// connection), which is the scheduler's and the store's share alone.
//
//	go run ./internal/cmd/selftestbench -names 10000 -duration 20s
//
// Re-tests are made fast (-retest-min, -retest-max) so that a short run
// measures many; the cost per re-test is what carries over to the default
// backoff (30 s doubling to 1 h), whose steady state the program derives.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/benchdb"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/selftest"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
)

func main() {
	names := flag.Int("names", 10000, "waiting names (one certificate each)")
	duration := flag.Duration("duration", 20*time.Second, "how long the scheduler runs per phase")
	rmin := flag.Duration("retest-min", time.Second, "first re-test after")
	rmax := flag.Duration("retest-max", 4*time.Second, "longest re-test interval")
	conc := flag.Int("concurrency", 8, "the scheduler's concurrency (manager.DefaultConcurrency)")
	flag.Parse()
	ctx := context.Background()
	fmt.Printf("selftestbench: %d waiting names, %s per phase, re-tests every %s doubling to %s, concurrency %d\n",
		*names, *duration, *rmin, *rmax, *conc)

	ref, err := phase(ctx, "reference (instant \"waiting\", no probe)", *names, *duration, *rmin, *rmax, *conc, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "selftestbench:", err)
		os.Exit(1)
	}
	real, err := phase(ctx, "self-test (DNS lookup, probe token stored, HTTP dial refused)", *names, *duration, *rmin, *rmax, *conc, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "selftestbench:", err)
		os.Exit(1)
	}
	fmt.Printf("\nratio self-test/reference: CPU per re-test %.2fx, write transactions per re-test %.2fx\n",
		real.cpuPerTest()/ref.cpuPerTest(), real.writesPerTest()/ref.writesPerTest())
	// Steady state at the default backoff: each name re-tested once an hour.
	rate := float64(*names) / certfleet.DefaultRetestMax.Seconds()
	fmt.Printf("at the default backoff (every name once per %s once it has waited ~2 h): %.2f re-tests/s, %.2f%% of one core, %.1f write transactions/s\n",
		certfleet.DefaultRetestMax, rate, 100*rate*real.cpuPerTest(), rate*real.writesPerTest())
}

type result struct {
	tests, writes, statements, orders int64
	cpu                               time.Duration
}

func (r result) cpuPerTest() float64    { return r.cpu.Seconds() / float64(max(r.tests, 1)) }
func (r result) writesPerTest() float64 { return float64(r.writes) / float64(max(r.tests, 1)) }

func phase(ctx context.Context, title string, n int, d, rmin, rmax time.Duration, conc int, probe bool) (result, error) {
	var res result
	dir, err := os.MkdirTemp("", "selftestbench")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	drv := sqlite.New(filepath.Join(dir, "bench.db"))
	if err := drv.Open(ctx); err != nil {
		return res, err
	}
	defer drv.Close()
	seam, db := benchdb.Count(drv.DB())
	store := &sqlstore.Store{}
	if err := store.Attach(ctx, seam); err != nil {
		return res, err
	}
	specs := make([]certfleet.CertificateSpec, n)
	for i := range specs {
		specs[i] = certfleet.CertificateSpec{Name: fmt.Sprintf("w%06d", i), KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256},
			Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig,
			Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: fmt.Sprintf("w%06d.bench.test", i)}}}
	}
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		return res, err
	}

	var tester certfleet.SelfTester = instantWaiting{}
	if probe {
		dnsSrv, err := dnstest.Start("127.0.0.1", "0", nil)
		if err != nil {
			return res, err
		}
		defer dnsSrv.Close()
		dnsSrv.ChaseCNAME = true // answers as the resolver: every name is 127.0.0.1
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, err
		}
		port := closed.Addr().(*net.TCPAddr).Port
		closed.Close() // nothing answers there: the probe's connection is refused
		tester = &selftest.Tester{Store: store, Resolver: &dns01.Resolver{Nameservers: []string{dnsSrv.Addr()}}, HTTPPort: port}
	}
	counted := &countingTester{SelfTester: tester}
	iss := &refusingIssuer{}
	m := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		SelfTester: counted, RetestMin: rmin, RetestMax: rmax, Concurrency: conc,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4}))}

	w0, s0 := db.Writes(), db.Statements()
	c0 := cpuTime()
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	_ = m.Run(rctx)
	took := time.Since(start)
	res.cpu = cpuTime() - c0
	res.tests = counted.n.Load()
	res.writes, res.statements = db.Writes()-w0, db.Statements()-s0
	res.orders = iss.n.Load()
	waiting, err := store.WaitingNames(ctx, certfleet.WaitingFilter{})
	if err != nil {
		return res, err
	}
	fmt.Printf("\n%s\n  %d self-tests in %s: %.0f re-tests/s; %d names waiting; %d orders attempted\n", title, res.tests, took.Round(time.Millisecond),
		float64(res.tests)/took.Seconds(), len(waiting), res.orders)
	fmt.Printf("  CPU %s (%.3f ms per re-test, %.0f%% of one core)\n", res.cpu.Round(time.Millisecond), 1000*res.cpuPerTest(), 100*res.cpu.Seconds()/took.Seconds())
	fmt.Printf("  store: %d write transactions (%.2f per re-test), %d statements in them (%.2f per re-test)\n",
		res.writes, res.writesPerTest(), res.statements, float64(res.statements)/float64(max(res.tests, 1)))
	if res.orders != 0 {
		return res, errors.New("an order was attempted for a waiting name")
	}
	return res, nil
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// instantWaiting says every name waits, at once: the reference.
type instantWaiting struct{}

func (instantWaiting) SelfTest(_ context.Context, _ certfleet.CertificateSpec, ids []certfleet.Identifier) ([]certfleet.SelfTestResult, error) {
	out := make([]certfleet.SelfTestResult, len(ids))
	for i, id := range ids {
		out[i] = certfleet.SelfTestResult{Identifier: id, Code: certfleet.WaitDNS, Reason: id.Value + " resolves elsewhere"}
	}
	return out, nil
}

type countingTester struct {
	certfleet.SelfTester
	n atomic.Int64
}

func (c *countingTester) SelfTest(ctx context.Context, spec certfleet.CertificateSpec, ids []certfleet.Identifier) ([]certfleet.SelfTestResult, error) {
	c.n.Add(int64(len(ids)))
	return c.SelfTester.SelfTest(ctx, spec, ids)
}

// refusingIssuer counts orders (there must be none) and refuses them.
type refusingIssuer struct{ n atomic.Int64 }

func (r *refusingIssuer) Issue(context.Context, certfleet.IssueRequest) (certfleet.IssueResult, error) {
	r.n.Add(1)
	return certfleet.IssueResult{}, errors.New("selftestbench: no orders")
}
