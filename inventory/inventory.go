// Package inventory keeps the certificates declared outside the config
// file — rows of a PostgreSQL table, entries of an LDAP directory, files of
// a conf.d directory (issue 18) — in the store. A Reconciler reads one
// Source, checks every entry with the config file's own rules
// (config.Config.InventoryEntry and InventoryFile: the same checks, the
// same messages), and syncs the valid ones as the spec source
// "inventory:NAME" (certfleet.SpecStore.SyncSpecs), so that a source never
// adds, changes or withdraws the config file's, the API's or another
// source's certificates.
//
// An invalid entry is reported once, naming the source and the entry (row,
// DN, file and line), and skipped: the others are synced, and the
// certificate it declared, if any, stays as stored. A certificate the
// source no longer declares is withdrawn only after the source's grace
// period (never revoked); a read that fails changes nothing and is reported
// once. Diff shows what a sync would do without doing it.
//
// It does not reach databases, directories or files itself: each kind of
// source is its own package (inventory/pgsource, inventory/ldapsource,
// inventory/dirsource), and package daemon wires them. Nor does it issue
// or write certificates: the scheduler (manager) and the daemon's deployer
// do, with the certificates a Reconciler holds (Certificate).
package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
)

// Entry is one thing a source declares: a row or an LDAP entry (Fields), or
// a whole file of [[certificate]] tables (File).
type Entry struct {
	// Where locates the entry for an operator: "row id=17", an LDAP DN,
	// a file's path.
	Where string
	// Fields are the entry's certificate keys (config.InventoryRowKeys)
	// as TOML values would be: a string, a list ([]any of strings), a
	// bool. Keys absent from the source are left out.
	Fields map[string]any
	// File, when not nil, is a whole TOML file (a directory source's);
	// Fields is then unused and Where is the file's path.
	File []byte
}

// Source reads what an inventory declares.
type Source interface {
	// Read returns every entry the source declares now, or an error when
	// it cannot be read in full (a server down, a query failing): a
	// partial read must never look like a complete one, since whatever
	// it left out would be withdrawn. The error says what failed and what
	// to do. Read is called from one goroutine at a time.
	Read(ctx context.Context) ([]Entry, error)
}

// Watcher is an optional interface of a Source that learns of changes as
// they happen (LISTEN/NOTIFY, an LDAP persistent search, file modification
// times).
type Watcher interface {
	// Watch calls changed whenever the source may have changed, and once
	// when it starts watching (changes may have been missed before), until
	// ctx ends or the watch fails. It returns nil when the source has
	// nothing to watch (the reconciler then relies on its schedule), or
	// the error that ended it (the reconciler retries).
	Watch(ctx context.Context, changed func()) error
}

// Store is what a Reconciler needs of the store.
type Store interface {
	certfleet.SpecStore
	certfleet.InventoryStore
}

// maxLoggedNames bounds the certificates a pass names one by one in the log.
const maxLoggedNames = 20

// DefaultSettle is how long a Reconciler waits after a change notification
// before it reads: a bulk update sends many, and one read covers them all.
const DefaultSettle = 200 * time.Millisecond

// Reconciler keeps one source's certificates in the store. Set the fields,
// then call Run (or Pass, Diff); they must not change afterwards. Safe for
// concurrent use.
type Reconciler struct {
	// Name is the source's name ([inventory.NAME]). Required.
	Name string
	// Source reads the entries. Required.
	Source Source
	// Store receives the specs. Required.
	Store Store
	// Config returns the configuration in force, whose [inventory.NAME]
	// entry gives the interval, the grace and the defaults, and whose
	// rules check the entries. Required.
	Config func() *config.Config
	// Events receives one config_changed event per certificate added,
	// changed or withdrawn, by "inventory:NAME". Nil records none.
	Events certfleet.EventSink
	// Changed is called after a sync added or changed a certificate (wake
	// the scheduler). Nil is fine.
	Changed func()
	// Now is the clock of the grace periods. Default time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Settle: see DefaultSettle.
	Settle time.Duration

	initOnce sync.Once
	wake     chan struct{}

	mu sync.Mutex // guards the fields below
	// certs are the certificates in force from this source (declared, or
	// held or pending as stored), for the deployer.
	certs    map[string]config.Certificate
	routes   map[string]string // dns-01 identifier → provider, of certs
	origin   map[string]string // name → where it was declared at the last read
	digest   [32]byte          // of the entries of the last read synced
	cfg      *config.Config    // the configuration they were decoded with
	clean    bool              // the last sync left nothing pending and no conflict: an equal digest needs no sync
	failing  string            // the failure last reported, "" when the last read worked
	watchErr string            // the watch failure last reported
	reported map[string]bool   // problems reported and still present
}

// Spec source of the reconciler's certificates.
func (r *Reconciler) source() string { return certfleet.InventorySource(r.Name) }

func (r *Reconciler) init() {
	r.initOnce.Do(func() {
		r.wake = make(chan struct{}, 1)
		r.reported = make(map[string]bool)
	})
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger.With(certfleet.LogSource, r.Name)
}

// settings returns the source's entry in the configuration in force.
func (r *Reconciler) settings() (*config.Config, config.Inventory, error) {
	cfg := r.Config()
	inv, ok := cfg.InventorySource(r.Name)
	if !ok {
		return nil, config.Inventory{}, fmt.Errorf("inventory source %q is not in %s", r.Name, cfg.File)
	}
	return cfg, inv, nil
}

// Wake asks Run for a pass now (after the settle time). It never blocks.
func (r *Reconciler) Wake() {
	r.init()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Certificate returns the certificate name as this source declares it, if
// it is one of the source's certificates in force.
func (r *Reconciler) Certificate(name string) (config.Certificate, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.certs[name]
	return c, ok
}

// Certificates returns the source's certificates in force, by name.
func (r *Reconciler) Certificates() []config.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]config.Certificate, 0, len(r.certs))
	for _, name := range slices.Sorted(maps.Keys(r.certs)) {
		out = append(out, r.certs[name])
	}
	return out
}

// Run syncs the source at once, then again at every notification of its
// Watcher, every interval, and when a pending withdrawal's grace ends,
// until ctx ends. Failures are logged (once each), never returned.
func (r *Reconciler) Run(ctx context.Context) {
	r.init()
	if w, ok := r.Source.(Watcher); ok {
		go r.watch(ctx, w)
	}
	for {
		p, _ := r.Pass(ctx) // reported by Pass
		wait := DefaultInventoryRetry
		if _, inv, err := r.settings(); err == nil {
			wait = inv.Interval
		}
		if next := p.NextWithdrawal(); !next.IsZero() {
			wait = min(wait, max(next.Sub(r.now()), time.Second))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-r.wake:
			timer.Stop()
			if !sleep(ctx, r.settleTime()) {
				return
			}
			select { // the notifications that came while settling
			case <-r.wake:
			default:
			}
		}
	}
}

// DefaultInventoryRetry is how often Run retries when its source has gone
// from the configuration (a reload is about to stop it).
const DefaultInventoryRetry = time.Minute

func (r *Reconciler) settleTime() time.Duration {
	if r.Settle > 0 {
		return r.Settle
	}
	return DefaultSettle
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watch runs the source's Watcher until ctx ends, restarting it after a
// failure (1 s, doubling to the interval) and reporting each new failure
// once; the schedule covers the gap.
func (r *Reconciler) watch(ctx context.Context, w Watcher) {
	backoff := time.Second
	for {
		started := time.Now()
		err := w.Watch(ctx, r.Wake)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			return // nothing to watch: the schedule alone
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second // it had worked for a while
		}
		r.mu.Lock()
		first := r.watchErr != err.Error()
		r.watchErr = err.Error()
		r.mu.Unlock()
		if first {
			r.log().Warn("inventory source: change notifications lost; re-reading on the schedule until they are back", certfleet.LogError, err, "retry_in", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
		interval := DefaultInventoryRetry
		if _, inv, err := r.settings(); err == nil {
			interval = inv.Interval
		}
		backoff = min(2*backoff, max(interval, time.Second))
	}
}

// Pass reads the source once and syncs what it declares (not at the same
// time as another Pass or Run of the same reconciler): the valid entries
// are added or changed, the certificates it no longer declares are
// withdrawn once their grace is over. A read that fails changes nothing;
// the error is reported once (and returned). An unchanged read costs no
// store access.
func (r *Reconciler) Pass(ctx context.Context) (Plan, error) {
	r.init()
	cfg, inv, err := r.settings()
	if err != nil {
		return Plan{}, err
	}
	entries, err := r.Source.Read(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.reportFailure(err, inv.Interval)
			r.fallback(ctx, cfg)
		}
		return Plan{}, err
	}
	// What is decoded depends on the entries and the configuration alone:
	// the same entries under the same configuration, after a sync that
	// left nothing to come back to, need neither decoding nor the store.
	digest := entriesDigest(entries)
	r.mu.Lock()
	skip := r.clean && digest == r.digest && cfg == r.cfg
	prevOrigin, prevCerts, unchanged := r.origin, r.certs, len(r.certs)
	r.mu.Unlock()
	if skip {
		r.recovered()
		return Plan{Source: r.source(), Grace: inv.Grace, Unchanged: unchanged}, nil
	}
	dec := decode(cfg, inv.Name, entries)
	p, err := r.plan(ctx, dec, inv, prevOrigin, prevCerts)
	if err != nil {
		r.reportFailure(err, inv.Interval)
		return Plan{}, err
	}
	res, err := r.Store.SyncSpecs(ctx, r.source(), p.specs)
	if certfleet.ErrorCode(err) == certfleet.ECONFLICT {
		// Another source took one of the names since the plan was made:
		// plan again, which skips it with a problem.
		if p, err = r.plan(ctx, dec, inv, prevOrigin, prevCerts); err == nil {
			res, err = r.Store.SyncSpecs(ctx, r.source(), p.specs)
		}
	}
	if err != nil {
		r.reportFailure(fmt.Errorf("sync into the store: %w", err), inv.Interval)
		return Plan{}, err
	}
	if err := r.Store.SetPendingWithdrawals(ctx, r.source(), p.Pending); err != nil {
		r.reportFailure(err, inv.Interval)
		return Plan{}, err
	}
	r.recovered()
	r.reportProblems(p.Problems)
	r.setCerts(p.certs)
	r.mu.Lock()
	r.origin, r.digest, r.cfg = dec.origin, digest, cfg
	r.clean = len(p.Pending) == 0 && !hasConflict(p, dec)
	r.mu.Unlock()
	r.record(ctx, res, p)
	if (len(res.Added) > 0 || len(res.Changed) > 0) && r.Changed != nil {
		r.Changed()
	}
	return p, nil
}

// setCerts makes certs the certificates in force, and indexes their dns-01
// providers.
func (r *Reconciler) setCerts(certs map[string]config.Certificate) {
	routes := make(map[string]string)
	for _, c := range certs {
		if c.Spec.Challenge != certfleet.ChallengeDNS01 {
			continue
		}
		for _, id := range c.Spec.Identifiers {
			routes[strings.TrimPrefix(id.Value, "*.")] = c.DNSProvider
		}
	}
	r.mu.Lock()
	r.certs, r.routes = certs, routes
	r.mu.Unlock()
}

// fallback makes the source's stored specs its certificates in force, with
// the outputs its defaults give, when it has not been read since the
// start: they stay in force (and are renewed) while it cannot be read, and
// their files must still be written.
func (r *Reconciler) fallback(ctx context.Context, cfg *config.Config) {
	r.mu.Lock()
	known := r.certs != nil
	r.mu.Unlock()
	if known {
		return
	}
	specs, err := r.Store.Specs(ctx, certfleet.SpecFilter{Source: r.source()})
	if err != nil {
		r.log().Error("inventory source: load its certificates from the store", certfleet.LogError, err)
		return
	}
	certs := make(map[string]config.Certificate, len(specs))
	for _, sp := range specs {
		if c, ok := cfg.InventoryCertificate(r.Name, sp); ok {
			certs[sp.Name] = c
		}
	}
	r.setCerts(certs)
}

// DNSProvider returns the dns-01 provider of an identifier (a wildcard as
// its base name) of one of the source's certificates in force.
func (r *Reconciler) DNSProvider(domain string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.routes[domain]
	return p, ok
}

// hasConflict reports whether a valid entry was skipped because another
// source holds its name: that source may let go of it without this one
// changing, so the next read must not be skipped.
func hasConflict(p Plan, dec decoded) bool {
	for name := range dec.certs {
		if _, ok := p.certs[name]; !ok {
			return true
		}
	}
	return false
}

// plan compares a read with the store.
func (r *Reconciler) plan(ctx context.Context, dec decoded, inv config.Inventory, prevOrigin map[string]string, prevCerts map[string]config.Certificate) (Plan, error) {
	stored, err := r.Store.Specs(ctx, certfleet.SpecFilter{IncludeDisabled: true})
	if err != nil {
		return Plan{}, fmt.Errorf("read the store's certificates: %w", err)
	}
	pending, err := r.Store.PendingWithdrawals(ctx, r.source())
	if err != nil {
		return Plan{}, err
	}
	return plan(r.source(), dec, stored, pending, r.now(), inv.Grace, prevOrigin, prevCerts), nil
}

// Diff reads the source and returns what a sync would do, changing
// nothing: for `certfleet inventory diff`, before a source is switched on.
// The config file's certificates count as the store's, as they will be
// once the daemon starts.
func (r *Reconciler) Diff(ctx context.Context) (Plan, error) {
	cfg, inv, err := r.settings()
	if err != nil {
		return Plan{}, err
	}
	entries, err := r.Source.Read(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("read inventory source %s: %w", r.Name, err)
	}
	stored, err := r.Store.Specs(ctx, certfleet.SpecFilter{IncludeDisabled: true})
	if err != nil {
		return Plan{}, fmt.Errorf("read the store's certificates: %w", err)
	}
	declared := make(map[string]bool)
	for _, sp := range cfg.Specs() {
		declared[sp.Name] = true
	}
	stored = slices.DeleteFunc(stored, func(sp certfleet.CertificateSpec) bool { return declared[sp.Name] })
	stored = append(stored, cfg.Specs()...)
	pending, err := r.Store.PendingWithdrawals(ctx, r.source())
	if err != nil {
		return Plan{}, err
	}
	return plan(r.source(), decode(cfg, inv.Name, entries), stored, pending, r.now(), inv.Grace, nil, nil), nil
}

// reportFailure logs a failed pass once per distinct failure.
func (r *Reconciler) reportFailure(err error, retry time.Duration) {
	r.mu.Lock()
	first := r.failing != err.Error()
	r.failing = err.Error()
	r.mu.Unlock()
	if first {
		r.log().Error("inventory source failed; nothing changed: the certificates it declared stay in force and none is withdrawn (logged again only when the failure changes or ends)",
			certfleet.LogError, err, "retry_in", retry)
		return
	}
	r.log().Debug("inventory source still failing", certfleet.LogError, err)
}

func (r *Reconciler) recovered() {
	r.mu.Lock()
	was := r.failing
	r.failing = ""
	r.mu.Unlock()
	if was != "" {
		r.log().Info("inventory source readable again", "was", was)
	}
}

// reportProblems logs each skipped entry's problem once, as long as it
// stays.
func (r *Reconciler) reportProblems(ps []config.Problem) {
	now := make(map[string]bool, len(ps))
	var fresh []string
	r.mu.Lock()
	for _, p := range ps {
		s := p.String()
		now[s] = true
		if !r.reported[s] {
			fresh = append(fresh, s)
		}
	}
	r.reported = now
	r.mu.Unlock()
	for _, s := range fresh {
		r.log().Warn("inventory entry skipped (the others are synced; a certificate it declared before stays as it was)", "problem", s)
	}
}

// record logs the sync and records one event per certificate it added,
// changed or withdrew. Failures are logged: the sync is done.
func (r *Reconciler) record(ctx context.Context, res certfleet.SyncResult, p Plan) {
	for i, name := range p.newlyPending {
		if i == maxLoggedNames {
			r.log().Warn("inventory source: more certificates no longer declared", "count", len(p.newlyPending)-i)
			break
		}
		r.log().Warn("inventory source no longer declares a certificate: it stays until its grace is over, and is withdrawn then (never revoked) unless it comes back",
			certfleet.LogCertificate, name, "withdraw_at", p.Pending[name].Add(p.Grace))
	}
	if len(res.Added)+len(res.Changed)+len(res.Disabled) == 0 {
		if len(p.Pending) > 0 {
			r.log().Debug("inventory source synced: nothing changed", "pending_withdrawals", len(p.Pending))
		}
		return
	}
	r.log().Info("inventory source synced", "summary", res.String(), "pending_withdrawals", len(p.Pending), "skipped_entries", len(p.Problems))
	if r.Events == nil {
		return
	}
	now, detail := time.Now(), res.String()
	events := make([]certfleet.Event, 0, len(res.Added)+len(res.Changed)+len(res.Disabled))
	for _, c := range []struct {
		reason string
		names  []string
	}{{"added", res.Added}, {"changed", res.Changed}, {"disabled", res.Disabled}} {
		for _, name := range c.names {
			events = append(events, certfleet.Event{At: now, Kind: certfleet.EventConfigChanged, Actor: r.source(),
				Certificate: name, Reason: c.reason, Detail: detail})
		}
	}
	// At once where the sink takes batches (the store: one transaction per
	// few thousand, not one per certificate).
	if err := certfleet.RecordEvents(ctx, r.Events, events); err != nil {
		r.log().Error("record inventory events", certfleet.LogError, err)
	}
}
