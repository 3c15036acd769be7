// Command queuebench measures the rate-limit deferral queue for
// BENCHMARKS.md (issue 13): N single-name certificates under a budget of B
// new orders per window, issued through an in-process Pebble (real http-01
// over loopback) by the scheduler's passes on a fake clock that moves from
// one due time to the next, as a daemon wakes. It counts what the budget
// costs: orders at the CA (Pebble's own counter) per window, the store's
// write transactions and statements (a counting sqlstore.DB under the real
// driver), audit rows (events recorded) by kind, attempts and log lines.
//
//	go run ./internal/cmd/queuebench -names 1000 -budget 20
//	go run ./internal/cmd/queuebench -names 1000 -budget 20 -store postgres -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// Each run uses a new SQLite file or PostgreSQL schema. The program uses
// only APIs that predate the queue, so the same file measures the code
// before it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/benchdb"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/ratelimit"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/sqlstore"
)

func main() {
	names := flag.Int("names", 1000, "single-name certificates to issue")
	budget := flag.Int("budget", 20, "new orders per window (new_orders_per_account)")
	window := flag.Duration("window", time.Minute, "the budget's window")
	conc := flag.Int("c", 8, "jobs worked on at once (Pebble wedges above 16 orders in flight)")
	kind := flag.String("store", "sqlite", "sqlite or postgres")
	dsn := flag.String("dsn", os.Getenv("CERTFLEET_TEST_POSTGRES"), "PostgreSQL server DSN for -store postgres (default $CERTFLEET_TEST_POSTGRES)")
	timeout := flag.Duration("timeout", 15*time.Minute, "bound of the run")
	flag.Parse()
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *names, *budget, *window, *conc, *kind, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "queuebench:", err)
		os.Exit(1)
	}
}

// clock is the fake clock of the store, the scheduler and the issuer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func run(ctx context.Context, names, budget int, window time.Duration, conc int, kind, dsn string) error {
	// Whole seconds: the stores keep microseconds, and the windows
	// measured below are then the stores' own.
	clk := &clock{t: time.Now().Truncate(time.Second)}
	drv, closeDrv, err := openDriver(ctx, kind, dsn, clk)
	if err != nil {
		return err
	}
	defer closeDrv()
	seam, db := benchdb.Count(drv)
	store := &sqlstore.Store{Now: clk.Now}
	if err := store.Attach(ctx, seam); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ca, err := pebbleca.Start(ctx, pebbleca.Config{Concurrent: true, HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		return err
	}
	defer ca.Close()
	tokens := &http01.Tokens{}
	go (&http01.Responder{Store: store, Tokens: tokens}).Serve(ctx, ln)
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(), TrustedRootsPEM: ca.TLSRootPEM(), Accounts: store,
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01.Solver{Store: store, Tokens: tokens}},
		PollInterval: 50 * time.Millisecond, Now: clk.Now,
	})
	if err != nil {
		return err
	}
	specs := make([]certfleet.CertificateSpec, names)
	for i := range specs {
		id, _ := certfleet.ParseIdentifier(fmt.Sprintf("host%d.queue.test", i))
		specs[i] = certfleet.CertificateSpec{Name: fmt.Sprintf("host%04d", i), Identifiers: []certfleet.Identifier{id},
			KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01, Source: certfleet.SourceConfig}
	}
	if _, err := store.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		return err
	}
	events := &eventCounter{sink: store}
	logs := &logCounter{}
	limits := ratelimit.Limits{NewOrdersPerAccount: ratelimit.Limit{Count: budget, Window: window}}
	m := &manager.Manager{
		Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss}, Concurrency: conc,
		Now: clk.Now, Rand: func() float64 { return 0 }, Events: events, Logger: slog.New(logs),
		Budget: &ratelimit.Budget{Store: store, Logger: slog.New(logs),
			Accounts: map[string]ratelimit.Account{certfleet.DefaultAccount: {CA: ca.DirectoryURL(), Limits: limits}}},
	}
	syncTx, syncStmts := db.Writes(), db.Statements()

	fmt.Printf("%d names, budget %d new orders per %v, %s store, %d jobs at once\n\n", names, budget, window, kind, conc)
	fmt.Printf("%6s %9s %7s %9s %9s %10s %10s\n", "pass", "at", "worked", "CA orders", "deferred", "write tx", "statements")
	start, t0 := time.Now(), clk.Now()
	issued, passes, maxPerWindow := 0, 0, 0
	var orderTimes []time.Time
	for issued < names {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped after %d passes, %d issued: %w", passes, issued, ctx.Err())
		}
		before, tx0, st0, def0 := ca.NewOrders(), db.Writes(), db.Statements(), events.count(certfleet.EventDeferred)
		rep, err := m.RunOnce(ctx)
		if err != nil {
			return err
		}
		passes++
		issued += rep.Issued
		orders := int(ca.NewOrders() - before)
		for range orders {
			orderTimes = append(orderTimes, clk.Now())
		}
		if rep.Failed > 0 {
			for _, r := range rep.Results {
				if r.Err != nil && r.Outcome == certfleet.OutcomeFailed {
					return fmt.Errorf("pass %d: %s failed: %v", passes, r.Key, r.Err)
				}
			}
		}
		fmt.Printf("%6d %9s %7d %9d %9d %10d %10d\n", passes, clk.Now().Sub(t0).Round(time.Second), len(rep.Results), orders,
			events.count(certfleet.EventDeferred)-def0, db.Writes()-tx0, db.Statements()-st0)
		if issued >= names {
			break
		}
		// Wake at the next due time, as the daemon does.
		next, ok, err := store.NextDue(ctx)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if next.After(clk.Now()) {
			clk.Set(next)
		}
	}
	wall := time.Since(start)
	// The budget: never more than B orders in any window.
	sort.Slice(orderTimes, func(i, j int) bool { return orderTimes[i].Before(orderTimes[j]) })
	for i := range orderTimes {
		n := sort.Search(len(orderTimes), func(j int) bool { return !orderTimes[j].Before(orderTimes[i].Add(window)) }) - i
		maxPerWindow = max(maxPerWindow, n)
	}
	attempts := 0
	for _, sp := range specs {
		atts, err := store.Attempts(ctx, certfleet.JobKey{Spec: sp.Name, KeyType: certfleet.ECDSAP256}, 0)
		if err != nil {
			return err
		}
		attempts += len(atts)
	}
	tx, stmts := db.Writes()-syncTx, db.Statements()-syncStmts
	fmt.Printf("\nissued %d of %d in %d passes (%v of fake time, %v wall)\n", issued, names, passes,
		clk.Now().Sub(t0).Round(time.Second), wall.Round(time.Millisecond))
	fmt.Printf("CA orders: %d (%.2f per name); most in one window: %d (budget %d)\n", ca.NewOrders(),
		float64(ca.NewOrders())/float64(names), maxPerWindow, budget)
	fmt.Printf("audit rows: %d in all; by kind: %s\n", events.total(), events.kinds())
	fmt.Printf("attempts kept: %d; log lines (info and above): %d\n", attempts, logs.n.Load())
	fmt.Printf("store writes after the sync: %d transactions, %d statements (%.1f and %.1f per name)\n",
		tx, stmts, float64(tx)/float64(names), float64(stmts)/float64(names))
	if issued != names || ca.NewOrders() != int64(names) || maxPerWindow > budget {
		return fmt.Errorf("want %d issued with exactly one order each and at most %d orders per window", names, budget)
	}
	return nil
}

// openDriver opens a fresh store of kind on the fake clock and returns its
// database seam.
func openDriver(ctx context.Context, kind, dsn string, clk *clock) (sqlstore.DB, func(), error) {
	switch kind {
	case "sqlite":
		dir, err := os.MkdirTemp("", "queuebench")
		if err != nil {
			return nil, nil, err
		}
		s := sqlite.New(filepath.Join(dir, "queue.db"))
		s.Now = clk.Now
		if err := s.Open(ctx); err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return s.DB(), func() { s.Close(); os.RemoveAll(dir) }, nil
	case "postgres":
		if dsn == "" {
			return nil, nil, fmt.Errorf("-store postgres needs -dsn or $CERTFLEET_TEST_POSTGRES")
		}
		schemaDSN, drop, err := benchdb.NewSchema(ctx, dsn, "queuebench")
		if err != nil {
			return nil, nil, err
		}
		s := postgres.New(schemaDSN)
		s.Now = clk.Now
		if err := s.Open(ctx); err != nil {
			drop()
			return nil, nil, err
		}
		return s.DB(), func() { s.Close(); drop() }, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q (sqlite or postgres)", kind)
}

// eventCounter records each event in the store's audit trail and counts it
// by kind: one event is one audit row.
type eventCounter struct {
	sink certfleet.EventSink
	mu   sync.Mutex
	by   map[string]int
}

func (c *eventCounter) RecordEvent(ctx context.Context, e certfleet.Event) error {
	c.mu.Lock()
	if c.by == nil {
		c.by = map[string]int{}
	}
	c.by[e.Kind]++
	c.mu.Unlock()
	return c.sink.RecordEvent(ctx, e)
}

func (c *eventCounter) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[kind]
}

func (c *eventCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.by {
		n += k
	}
	return n
}

func (c *eventCounter) kinds() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ks []string
	for k := range c.by {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	out := ""
	for i, k := range ks {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %d", k, c.by[k])
	}
	return out
}

// logCounter is a slog.Handler that counts records at Info and above and
// writes none.
type logCounter struct{ n atomic.Int64 }

func (h *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *logCounter) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCounter) WithGroup(string) slog.Handler      { return h }
