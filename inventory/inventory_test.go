package inventory_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/inventory"
	"github.com/certfleet/certfleet/sqlite"
)

// entries is a Source whose entries the test sets; the real sources (a
// PostgreSQL table, slapd, a directory) have their own end-to-end tests.
type entries struct {
	mu   sync.Mutex
	list []inventory.Entry
	err  error
}

func (s *entries) set(list ...inventory.Entry) { s.mu.Lock(); s.list, s.err = list, nil; s.mu.Unlock() }
func (s *entries) fail(err error)              { s.mu.Lock(); s.err = err; s.mu.Unlock() }
func (s *entries) Read(context.Context) ([]inventory.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list), s.err
}

func row(where, name string, ids ...string) inventory.Entry {
	list := make([]any, len(ids))
	for i, id := range ids {
		list[i] = id
	}
	f := map[string]any{"identifiers": list}
	if name != "" {
		f["name"] = name
	}
	return inventory.Entry{Where: where, Fields: f}
}

// counting counts the store's reads, to show an unchanged source costs none.
type counting struct {
	inventory.Store
	reads atomic.Int64
}

func (c *counting) Specs(ctx context.Context, f certfleet.SpecFilter) ([]certfleet.CertificateSpec, error) {
	c.reads.Add(1)
	return c.Store.Specs(ctx, f)
}

type fixture struct {
	store *sqlite.Store
	src   *entries
	clock *daemontest.Clock
	log   *bytes.Buffer
	logMu *sync.Mutex
	cfg   *config.Config
}

const testConfig = `state = "x.db"
[ca]
directory = "letsencrypt"
[[certificate]]
name = "from-config"
identifiers = ["config.example.org"]
[inventory.main]
type = "directory"
dir = "conf.d"
grace = "1h"
[inventory.other]
type = "directory"
dir = "other.d"
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "certfleet.toml"), []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.SyncSpecs(t.Context(), certfleet.SourceConfig, cfg.Specs()); err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, src: &entries{}, clock: daemontest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		log: &bytes.Buffer{}, logMu: &sync.Mutex{}, cfg: cfg}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (f *fixture) reconciler(name string, st inventory.Store) *inventory.Reconciler {
	return &inventory.Reconciler{Name: name, Source: f.src, Store: st, Config: func() *config.Config { return f.cfg },
		Now: f.clock.Now, Events: f.store, Logger: slog.New(slog.NewTextHandler(lockedWriter{f.logMu, f.log}, nil))}
}

func (f *fixture) logged() string { f.logMu.Lock(); defer f.logMu.Unlock(); return f.log.String() }

func mustPass(t *testing.T, r *inventory.Reconciler) inventory.Plan {
	t.Helper()
	p, err := r.Pass(t.Context())
	if err != nil {
		t.Fatalf("Pass: %v", err)
	}
	return p
}

// enabled returns the enabled specs of source, by name.
func enabled(t *testing.T, st certfleet.SpecStore, source string) map[string]certfleet.CertificateSpec {
	t.Helper()
	specs, err := st.Specs(t.Context(), certfleet.SpecFilter{Source: source})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]certfleet.CertificateSpec)
	for _, sp := range specs {
		out[sp.Name] = sp
	}
	return out
}

func names(m map[string]certfleet.CertificateSpec) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestReconcileAddChangeWithdrawAfterGrace(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler("main", f.store)
	f.src.set(row("row 1", "a", "a.example.org"), row("row 2", "", "b.example.org"))
	p := mustPass(t, r)
	if len(p.Add) != 2 {
		t.Fatalf("first pass added %d, want 2", len(p.Add))
	}
	got := enabled(t, f.store, "inventory:main")
	if !slices.Equal(names(got), []string{"a", "b.example.org"}) {
		t.Fatalf("specs of inventory:main = %v", names(got))
	}
	if c, ok := r.Certificate("a"); !ok || c.Output.Dir != "/etc/certfleet/live/a" {
		t.Errorf("Certificate(a) = %+v, %v; want it with [defaults]' output", c, ok)
	}

	// A change of identifiers changes the spec; b disappears: pending.
	f.src.set(row("row 1", "a", "a.example.org", "www.a.example.org"))
	p = mustPass(t, r)
	if len(p.Change) != 1 || p.Change[0].New.Name != "a" || len(p.Pending) != 1 || len(p.Withdraw) != 0 {
		t.Fatalf("second pass: %+v", p)
	}
	got = enabled(t, f.store, "inventory:main")
	if len(got["a"].Identifiers) != 2 || got["b.example.org"].Name == "" {
		t.Fatalf("after the change: %v; b must stay during its grace", got)
	}
	pending, err := f.store.PendingWithdrawals(t.Context(), "inventory:main")
	if err != nil || !pending["b.example.org"].Equal(f.clock.Now()) {
		t.Fatalf("pending withdrawals = %v, %v", pending, err)
	}
	if !strings.Contains(f.logged(), "no longer declares a certificate") {
		t.Errorf("the pending withdrawal was not logged:\n%s", f.logged())
	}

	// A restart (a new reconciler) keeps the grace's start: withdrawn only
	// an hour after it was first seen missing, not an hour after the restart.
	f.clock.Set(f.clock.Now().Add(59 * time.Minute))
	r = f.reconciler("main", f.store)
	mustPass(t, r)
	if _, ok := enabled(t, f.store, "inventory:main")["b.example.org"]; !ok {
		t.Fatal("withdrawn before its grace was over")
	}
	f.clock.Set(f.clock.Now().Add(time.Minute))
	p = mustPass(t, r)
	if !slices.Equal(p.Withdraw, []string{"b.example.org"}) {
		t.Fatalf("after the grace: withdraw %v", p.Withdraw)
	}
	if _, ok := enabled(t, f.store, "inventory:main")["b.example.org"]; ok {
		t.Fatal("still enabled after its grace")
	}
	if pending, _ := f.store.PendingWithdrawals(t.Context(), "inventory:main"); len(pending) != 0 {
		t.Errorf("pending after the withdrawal: %v", pending)
	}
	// The config file's certificate was never touched.
	if _, ok := enabled(t, f.store, certfleet.SourceConfig)["from-config"]; !ok {
		t.Error("the config's certificate was withdrawn")
	}
	// One event per certificate, by the source.
	evs, err := f.store.Events(t.Context(), certfleet.EventFilter{Actor: "inventory:main"})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs {
		reasons = append(reasons, e.Certificate+" "+e.Reason)
	}
	slices.Sort(reasons)
	want := []string{"a added", "a changed", "b.example.org added", "b.example.org disabled"}
	if !slices.Equal(reasons, want) {
		t.Errorf("events = %v, want %v", reasons, want)
	}
}

func TestReconcileComesBackDuringGrace(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler("main", f.store)
	f.src.set(row("row 1", "a", "a.example.org"))
	mustPass(t, r)
	f.src.set()
	if p := mustPass(t, r); len(p.Pending) != 1 {
		t.Fatalf("pending = %v", p.Pending)
	}
	f.clock.Set(f.clock.Now().Add(30 * time.Minute))
	f.src.set(row("row 1", "a", "a.example.org"))
	if p := mustPass(t, r); len(p.Pending) != 0 || p.Unchanged != 1 {
		t.Fatalf("back: %+v", p)
	}
	// Gone again: the grace starts anew.
	f.clock.Set(f.clock.Now().Add(50 * time.Minute))
	f.src.set()
	mustPass(t, r)
	f.clock.Set(f.clock.Now().Add(50 * time.Minute))
	mustPass(t, r)
	if _, ok := enabled(t, f.store, "inventory:main")["a"]; !ok {
		t.Fatal("withdrawn although it was back within its grace and gone again for less than the grace")
	}
}

func TestReconcileInvalidEntriesSkippedAndHeld(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler("main", f.store)
	f.src.set(row("row 1", "a", "a.example.org"), row("row 2", "b", "b.example.org"))
	mustPass(t, r)
	// Row 2 becomes invalid (a typo in a key type), a new row 3 is
	// invalid, row 4 is new and valid.
	bad := row("row 2", "b", "b.example.org", "c.example.org")
	bad.Fields["key_types"] = []any{"ecdsa-p512"}
	f.src.set(row("row 1", "a", "a.example.org"), bad, row("row 3", "", "not a name"), row("row 4", "d", "d.example.org"))
	p := mustPass(t, r)
	var probs []string
	for _, pr := range p.Problems {
		probs = append(probs, pr.String())
	}
	joined := strings.Join(probs, "\n")
	for _, w := range []string{`row 2: key_types[0]: unknown key type "ecdsa-p512"`, `row 3: identifiers[0]: `} {
		if !strings.Contains(joined, w) {
			t.Errorf("problems:\n%s\nwant %q", joined, w)
		}
	}
	got := enabled(t, f.store, "inventory:main")
	if !slices.Equal(names(got), []string{"a", "b", "d"}) || len(got["b"].Identifiers) != 1 {
		t.Fatalf("specs = %v (b = %+v): b must stay as it was, d must be added", names(got), got["b"])
	}
	if !slices.Equal(p.Held, []string{"b"}) {
		t.Errorf("Held = %v", p.Held)
	}
	// Each problem is logged once, not at every pass.
	mustPass(t, r)
	mustPass(t, r)
	if n := strings.Count(f.logged(), "ecdsa-p512"); n != 1 {
		t.Errorf("the problem was logged %d times, want once:\n%s", n, f.logged())
	}
	// Held for ever: an invalid entry is not a missing one.
	f.clock.Set(f.clock.Now().Add(48 * time.Hour))
	mustPass(t, r)
	if _, ok := enabled(t, f.store, "inventory:main")["b"]; !ok {
		t.Fatal("the certificate of an invalid entry was withdrawn")
	}
}

func TestReconcileFailingSourceChangesNothing(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler("main", f.store)
	f.src.set(row("row 1", "a", "a.example.org"))
	mustPass(t, r)
	f.src.fail(errors.New("ldap: connection refused: check that the server runs"))
	for range 3 {
		f.clock.Set(f.clock.Now().Add(24 * time.Hour))
		if _, err := r.Pass(t.Context()); err == nil {
			t.Fatal("Pass of a failing source returned no error")
		}
	}
	if _, ok := enabled(t, f.store, "inventory:main")["a"]; !ok {
		t.Fatal("a failing source withdrew its certificate")
	}
	if pending, _ := f.store.PendingWithdrawals(t.Context(), "inventory:main"); len(pending) != 0 {
		t.Errorf("a failing source made withdrawals pending: %v", pending)
	}
	if n := strings.Count(f.logged(), "connection refused"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, f.logged())
	}
	f.src.set(row("row 1", "a", "a.example.org"))
	mustPass(t, r)
	if !strings.Contains(f.logged(), "readable again") {
		t.Errorf("the recovery was not logged:\n%s", f.logged())
	}
}

func TestReconcileSourcesDoNotFight(t *testing.T) {
	f := newFixture(t)
	main, other := f.reconciler("main", f.store), f.reconciler("other", f.store)
	otherSrc := &entries{}
	other.Source = otherSrc
	f.src.set(row("row 1", "a", "a.example.org"), row("row 2", "from-config", "x.example.org"))
	otherSrc.set(row("row 1", "a", "a2.example.org"), row("row 2", "o", "o.example.org"))
	p := mustPass(t, main)
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].String(), `row 2: name: certificate "from-config" is already declared by the config file`) {
		t.Errorf("problems = %v", p.Problems)
	}
	p = mustPass(t, other)
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].String(), `row 1: name: certificate "a" is already declared by inventory source main`) {
		t.Errorf("problems = %v", p.Problems)
	}
	if got := names(enabled(t, f.store, "inventory:other")); !slices.Equal(got, []string{"o"}) {
		t.Errorf("other's specs = %v", got)
	}
	// Main lets go of a (withdrawn after its grace): other takes it.
	f.src.set()
	mustPass(t, main)
	f.clock.Set(f.clock.Now().Add(2 * time.Hour))
	mustPass(t, main)
	mustPass(t, other)
	if got := enabled(t, f.store, "inventory:other")["a"]; len(got.Identifiers) != 1 || got.Identifiers[0].Value != "a2.example.org" {
		t.Errorf("after main let go: other's a = %+v", got)
	}
	if _, ok := enabled(t, f.store, certfleet.SourceConfig)["from-config"]; !ok {
		t.Error("the config's certificate was taken")
	}
}

func TestReconcileUnchangedCostsNoStoreRead(t *testing.T) {
	f := newFixture(t)
	st := &counting{Store: f.store}
	r := f.reconciler("main", st)
	f.src.set(row("row 1", "a", "a.example.org"))
	mustPass(t, r)
	before := st.reads.Load()
	for range 5 {
		mustPass(t, r)
	}
	if n := st.reads.Load() - before; n != 0 {
		t.Errorf("5 passes over an unchanged source read the store %d times, want 0", n)
	}
	f.src.set(row("row 1", "a", "a.example.org", "b.example.org"))
	mustPass(t, r)
	if st.reads.Load() == before {
		t.Error("a changed source was not synced")
	}
}

func TestReconcileBrokenFileHoldsItsCertificates(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler("main", f.store)
	web := inventory.Entry{Where: "/conf.d/web.toml", File: []byte("[[certificate]]\nname = \"web\"\nidentifiers = [\"web.example.org\"]\n")}
	api := inventory.Entry{Where: "/conf.d/api.toml", File: []byte("[[certificate]]\nname = \"api\"\nidentifiers = [\"api.example.org\"]\n")}
	f.src.set(web, api)
	mustPass(t, r)
	// web.toml half-written: not TOML. Its certificate is held, not pending.
	web.File = []byte("[[certificate]]\nname = \"web\"\nidentifiers = [\"web.exam")
	f.src.set(web, api)
	p := mustPass(t, r)
	if len(p.Pending) != 0 || !slices.Equal(p.Held, []string{"web"}) {
		t.Fatalf("pending %v, held %v; want web held", p.Pending, p.Held)
	}
	if len(p.Problems) != 1 || !strings.HasPrefix(p.Problems[0].String(), "/conf.d/web.toml:3") {
		t.Errorf("problems = %v", p.Problems)
	}
	f.clock.Set(f.clock.Now().Add(48 * time.Hour))
	mustPass(t, r)
	if _, ok := enabled(t, f.store, "inventory:main")["web"]; !ok {
		t.Fatal("the certificate of a broken file was withdrawn")
	}
	// Two files declaring one name: the second is skipped.
	dup := inventory.Entry{Where: "/conf.d/zz.toml", File: []byte("[[certificate]]\nname = \"api\"\nidentifiers = [\"other.example.org\"]\n")}
	f.src.set(web, api, dup)
	p = mustPass(t, r)
	if len(p.Problems) != 2 || !strings.Contains(p.Problems[1].String(), `/conf.d/zz.toml: name: certificate name "api" is already declared by /conf.d/api.toml`) {
		t.Errorf("problems = %v", p.Problems)
	}
}

func TestDiffChangesNothing(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler("main", f.store)
	f.src.set(row("row 1", "a", "a.example.org"), row("row 2", "b", "b.example.org"))
	mustPass(t, r)
	f.src.set(row("row 1", "a", "a.example.org", "www.a.example.org"), row("row 3", "c", "c.example.org"))
	p, err := r.Diff(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != 1 || p.Add[0].Spec.Name != "c" || len(p.Change) != 1 || p.Change[0].New.Name != "a" ||
		len(p.Pending) != 1 || p.Grace != time.Hour {
		t.Fatalf("diff = %+v", p)
	}
	if got := names(enabled(t, f.store, "inventory:main")); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Diff changed the store: %v", got)
	}
	if pending, _ := f.store.PendingWithdrawals(t.Context(), "inventory:main"); len(pending) != 0 {
		t.Errorf("Diff made withdrawals pending: %v", pending)
	}
}

// TestReconcileFailingAtStartKeepsStoredCertificates: a daemon started
// while its source is down still knows the source's certificates (from the
// store, with the source's outputs), so renewals are written.
func TestReconcileFailingAtStartKeepsStoredCertificates(t *testing.T) {
	f := newFixture(t)
	f.src.set(row("row 1", "a", "a.example.org"))
	mustPass(t, f.reconciler("main", f.store))
	r := f.reconciler("main", f.store) // a restart
	f.src.fail(errors.New("connection refused"))
	if _, err := r.Pass(t.Context()); err == nil {
		t.Fatal("no error")
	}
	c, ok := r.Certificate("a")
	if !ok || c.Output.Dir != "/etc/certfleet/live/a" || len(c.Spec.Identifiers) != 1 {
		t.Fatalf("Certificate(a) = %+v, %v; want the stored spec with the source's output", c, ok)
	}
}
