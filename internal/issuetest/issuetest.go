// Package issuetest sets up what a test needs to issue certificates
// through real components: an in-process Pebble (internal/pebbleca) with
// the http-01 responder its validator dials, a SQLite store in the test's
// temporary directory, and a clock the test moves.
//
// The responder's port is a listener opened before the CA starts and held
// until the test ends: never a port chosen by listening and closing, which
// a concurrent test could take in between. It is imported from _test.go
// files only; the issuer, manager and API on top stay each test's own, as
// they differ from one test to the next. Tests of a configured daemon use
// internal/daemontest instead.
package issuetest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

// StartCA starts a Pebble for t with cfg, its HTTPPort set to a loopback
// listener on which an http-01 responder answers from store until t ends.
// It returns the CA and the solver that presents answers where that
// responder finds them (in memory first, then store).
func StartCA(t testing.TB, cfg pebbleca.Config, store certfleet.ChallengeStore) (*pebbleca.CA, *http01.Solver) {
	t.Helper()
	ln := Listen(t)
	cfg.HTTPPort = ln.Addr().(*net.TCPAddr).Port
	ca, err := pebbleca.Start(t.Context(), cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() { ca.Close() })
	tokens := &http01.Tokens{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { (&http01.Responder{Store: store, Tokens: tokens}).Serve(ctx, ln) })
	return ca, &http01.Solver{Store: store, Tokens: tokens}
}

// Listen returns a listener on a free loopback port, closed when t ends
// (if its user has not closed it before).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// OpenSQLite opens a SQLite store in t's temporary directory, closed when
// t ends.
func OpenSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Clock is a settable clock, safe for concurrent use, for a store, a
// manager and an issuer to share: time passes when the test says so.
type Clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Main is a TestMain for a package whose tests start CAs: Pebble reads its
// knobs in its constructors, once, so they are set here, before any test
// (t.Setenv would rule out t.Parallel). No random delay before each
// validation; nonce rejection stays at Pebble's default, so that retries
// are exercised.
func Main(m *testing.M) {
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}
