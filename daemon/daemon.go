// Package daemon is what a running certfleet server is made of, assembled
// from a *config.Config: the store (opened, migrated and unsealed from the
// config's state and master key), the ACME issuers of its accounts, the
// challenge solvers and responders, the renewal scheduler (manager), the
// writer of certificate files and commands, the endpoint watcher, the alert
// evaluator, the metrics, the rate-limit budgets (tenants' quotas among
// them), the issuers of ACME accounts declared at runtime, and the HTTP API
// with the dashboard. Open builds it; Serve runs it until its context ends;
// IssueOnce runs one pass (for cron); Reload applies a new configuration
// without a restart; Close releases it. The serve, issue, status and demo
// commands run one, and so do end-to-end tests and programs that embed
// certfleet.
//
// It parses no flags, reads no environment variable (the master key's
// environment form arrives in Options.MasterKey) and prints nothing: that is
// cmd/certfleet's. Nor does it hold the logic it assembles: scheduling is
// manager's, ACME acmeissuer's, challenges the solver packages', files and
// commands deploy's, what an endpoint serves endpoint's, and the API and
// dashboard are httpapi's and dashboard's. What certfleet check and
// certfleet compromise do is in preflight and compromise.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/hook"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/solver/answers"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/solver/tlsalpn01"
	"github.com/certfleet/certfleet/solver/webroot"
)

// Daemon is certfleet wired together from a configuration: the store, the
// issuers, the solvers and responders, the scheduler and the file writer.
// serve, issue and demo all run one; end-to-end tests run it too. Open
// builds one; its exported fields are for reading, not for replacing.
type Daemon struct {
	// Config is the configuration the daemon was opened with; after a
	// reload (SIGHUP), CurrentConfig is the one in force.
	Config  *config.Config
	Store   certfleet.Store
	Manager *manager.Manager
	Logger  *slog.Logger
	// Metrics are the Prometheus metrics (nil when the store cannot
	// answer scrapes).
	Metrics *metrics.Metrics
	// Alerts evaluates the alert conditions and notifies; it runs under
	// Serve.
	Alerts *alert.Evaluator
	// Hooks sends the events owed to [events] hooks; it runs under Serve.
	// Nil without hooks, or for a daemon opened without responders.
	Hooks *hook.Dispatcher

	// HTTP01Addr and TLSALPN01Addr are the responders' bound addresses
	// ("" when not started), so tests can listen on port 0.
	HTTP01Addr, TLSALPN01Addr string

	// events receives every audit event (the manager's, the API's, config
	// syncs'): the store's audit trail first. Other sinks (metrics, alerts)
	// append theirs in Open, before anything runs.
	events certfleet.EventSinks
	// recorder, with [events] hooks, is events' first sink instead of the
	// store: it writes the audit trail and what is owed to the hooks.
	recorder *hook.Recorder

	live      *liveConfig
	global    *deploy.Batch      // [deploy] commands
	outputs   *deploy.Follower   // keeps this instance's files current
	changes   *certfleet.Changes // issuances here and (with a Notifier store) elsewhere; wakes API long-polls
	endpoints *endpointWatcher
	listeners []net.Listener
	serveWG   sync.WaitGroup
	serveCtx  context.Context
	stopServe context.CancelFunc
	errs      chan error

	// acme holds the issuers by account name, unwrapped, for account
	// management and compromise revocations.
	acme map[string]*acmeissuer.Issuer
	// declared builds and keeps the issuers of accounts declared at
	// runtime (tenant.go).
	declared declaredAccounts
	// solvers, dnsSolver and version are what every issuer is built with.
	solvers   map[certfleet.ChallengeType]certfleet.Solver
	dnsSolver *dns01.Solver
	version   string
	pprof     string // Options.Pprof
}

// Options are the knobs that do not belong in the config file.
type Options struct {
	Logger *slog.Logger
	// HTTP01Listener and TLSALPN01Listener, when set, are used instead of
	// listening on the configured addresses (tests, the demo).
	HTTP01Listener, TLSALPN01Listener net.Listener
	// StartResponders starts the built-in responders (serve, issue and demo
	// do; status does not).
	StartResponders bool
	// Now overrides the clock (tests).
	Now func() time.Time
	// Instance overrides the lease owner name (tests).
	Instance string
	// PrintCommands, when set (test mode without run_commands), receives
	// the commands that would run after an update, instead of running them.
	PrintCommands io.Writer
	// MasterKey is the master key in its text form from the environment
	// (MasterKeyEnv, which cmd reads); it overrides the config's
	// master_key_file. "" uses the file.
	MasterKey string
	// Version is certfleet's version, for the ACME User-Agent. Default
	// "(devel)".
	Version string
	// Pprof, from PprofEnv (which cmd reads), is a loopback address where
	// Serve answers Go's profiler; "" (the default) serves none.
	Pprof string
}

// Open opens the store, syncs the config's certificates into it, and
// builds (but does not start) the rest; with opts.StartResponders it also
// releases the leases of dead local processes and starts the challenge
// responders. Close releases everything. A store that cannot be reached
// fails with certfleet.EUNAVAILABLE (a caller may retry).
func Open(ctx context.Context, cfg *config.Config, opts Options) (d *Daemon, err error) {
	started := time.Now() // older temporary files are no write in progress here
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opened := &Daemon{Config: cfg, Logger: log, errs: make(chan error, 4), live: newLiveConfig(cfg), changes: &certfleet.Changes{}}
	d = opened
	defer func() {
		if err != nil {
			opened.Close() // d is nil by now: the returns below say "return nil, err"
		}
	}()
	if opts.StartResponders {
		// A daemon that writes files checks first that it can: owners,
		// groups, output paths (docs/deploy-state.md).
		if err := cfg.CheckHost(); err != nil {
			return nil, err
		}
	}
	keys, err := LoadKeys(cfg.MasterKey, opts.MasterKey)
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(ctx, cfg.State, keys, log)
	if err != nil {
		return nil, err
	}
	d.Store = store
	d.events = certfleet.EventSinks{store} // the audit trail
	d.Metrics = newMetrics(store, log)     // before the issuers (Observer) and the manager (an event sink)
	if d.Metrics != nil {
		d.events = append(d.events, d.Metrics)
	}
	if err := d.openHooks(cfg, opts); err != nil { // events owed to hooks (docs/events.md)
		return nil, err
	}

	// Secrets the config names as "store:NAME" are read from the store
	// (sealed there); rcfg holds their values and is used only to build
	// the issuers and solvers, never kept or printed.
	rcfg, err := ResolveSecrets(ctx, cfg, store)
	if err != nil {
		return nil, err
	}

	res, err := store.SyncSpecs(ctx, certfleet.SourceConfig, cfg.Specs())
	if err != nil {
		return nil, fmt.Errorf("load certificates from %s into the store: %w", cfg.File, err)
	}
	log.Info("certificates loaded from config", "file", cfg.File, "summary", res.String())
	d.recordSync(ctx, cfg, res)

	// The answers of both responders are also kept in memory, so that
	// they are given through a store outage (issue 16).
	tokens, alpn := &http01.Tokens{}, &answers.Cache{}
	solvers := map[certfleet.ChallengeType]certfleet.Solver{
		certfleet.ChallengeHTTP01:    &http01.Solver{Store: store, Tokens: tokens},
		certfleet.ChallengeTLSALPN01: &tlsalpn01.Solver{Store: store, Answers: alpn},
		certfleet.ChallengeWebroot:   liveWebroot{d.live},
	}
	dnsSolver, err := NewDNS01Solver(ctx, rcfg, store, log)
	if err != nil {
		return nil, err
	}
	if dnsSolver != nil {
		solvers[certfleet.ChallengeDNS01] = dnsSolver
	}
	solvers[certfleet.ChallengeDNSPersist01] = d.persistSolver() // never writes DNS (selftest.go)

	d.version, d.pprof = opts.Version, opts.Pprof
	if d.version == "" {
		d.version = "(devel)"
	}
	d.solvers, d.dnsSolver = solvers, dnsSolver
	issuers := make(map[string]certfleet.Issuer, len(rcfg.Accounts))
	d.acme = make(map[string]*acmeissuer.Issuer, len(rcfg.Accounts))
	for name, acct := range rcfg.Accounts {
		var roots []byte
		if acct.TrustedRoots != "" {
			roots, err = os.ReadFile(acct.TrustedRoots)
			if err != nil {
				return nil, fmt.Errorf("account %q: read trusted_roots: %w", name, err)
			}
		}
		var eab *acmeissuer.EAB
		if acct.EABKeyID != "" {
			eab = &acmeissuer.EAB{KeyID: acct.EABKeyID, HMAC: acct.EABHMACKey}
		}
		d.acme[name], issuers[name], err = d.newIssuer(name, acct.Directory, roots, acct.Contact(), eab)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", name, err)
		}
	}

	d.endpoints = newEndpointWatcher(d)
	if opts.Now != nil {
		d.endpoints.now = opts.Now
	}
	if d.Alerts, err = newAlerts(cfg, store, d.endpoints, opts, log); err != nil {
		return nil, err
	}
	d.events = append(d.events, d.Alerts) // events wake the evaluator
	if d.recorder != nil && opts.StartResponders && wantsExpiring(d.recorder.Hooks) {
		d.Alerts.Notifiers = append(d.Alerts.Notifiers, expiringEvents{d.recorder})
	}
	writer := &deploy.Writer{Logger: log, StateDir: stateDir(cfg)}
	d.global = &deploy.Batch{Writer: writer, Print: opts.PrintCommands,
		Commands: func() [][]string { return d.live.config().Deploy.Commands },
		Actions:  func() []deploy.Action { return actionsOf(d.live.config()) }}
	fd := &fileDeployer{live: d.live, writer: writer, changes: d.changes, written: d.endpoints.written, printCommands: opts.PrintCommands, global: d.global,
		store: store, now: opts.Now, log: log}
	d.outputs = newOutputs(d, fd) // other instances' issuances written here too (issue 16)
	fd.outputs = d.outputs
	d.Manager = &manager.Manager{
		Store:       store,
		Issuers:     issuers,
		Deployer:    fd,
		Prepare:     prepareHook(d.live, writer, opts.PrintCommands),
		Concurrency: cfg.Renewal.Concurrency,
		Lease:       cfg.Scheduler.Takeover,  // [scheduler]: zero is the default
		Heartbeat:   cfg.Scheduler.Heartbeat, // (docs/postgres.md)
		Logger:      log,
		Now:         opts.Now,
		Instance:    opts.Instance,
		Events:      &d.events,
		PackDelay:   cfg.API.PackDelay, // [api] pack_delay (docs/api.md)
	}
	d.Manager.Budget = newBudget(cfg, store, log) // rate-limit budgets (docs/ratelimits.md)
	if t := d.newSelfTester(cfg, log); t != nil { // names tested before orders (docs/readiness.md)
		d.Manager.SelfTester = t
		d.Manager.RetestMin, d.Manager.RetestMax = cfg.SelfTest.RetestMin, cfg.SelfTest.RetestMax
	}
	d.wireTenants() // accounts declared at runtime, tenants' quotas (issue 12)

	// Inventory sources (docs/inventory.md): built now, read by Serve and
	// IssueOnce; dns-01 routes their certificates' names too.
	d.live.inventory, err = NewReconcilers(rcfg, store, nil, InventoryOptions{
		Current: d.live.config, Events: &d.events, Changed: d.Manager.Wake, Now: opts.Now, Logger: log})
	if err != nil {
		return nil, err
	}
	if dnsSolver != nil {
		dnsSolver.Route = d.live.dnsRoute
	}

	if opts.StartResponders {
		removeStaleTemp(cfg, started, log) // kill -9 mid-write (issue 16)
		// Prepare helpers a killed certfleet left running (a forwarder
		// still holding a port) are stopped before anything is ordered.
		if _, err := deploy.StopLeftHelpers(writer.StateDir, log); err != nil {
			log.Warn("left prepare helpers", certfleet.LogError, err)
		}
		// Work a killed certfleet on this host held is resumed now, not
		// when its lease runs out.
		if _, err := d.Manager.ReleaseLeases(ctx, deadLocalProcess); err != nil {
			return nil, err
		}
		if err := d.startResponders(ctx, store, tokens, alpn, opts); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// OpenRetrying calls open until it succeeds or fails with an error other
// than certfleet.EUNAVAILABLE: while the store is unreachable (a database
// restarting, a network partition) a daemon waits for it instead of
// exiting, 2 s after the first failure, doubling to 30 s, telling retrying
// each time. Any other error (a bad config) ends it at once, as does ctx.
func OpenRetrying(ctx context.Context, open func(context.Context) (*Daemon, error), retrying func(err error, wait time.Duration)) (*Daemon, error) {
	for failures := 1; ; failures++ {
		d, err := open(ctx)
		if err == nil || certfleet.ErrorCode(err) != certfleet.EUNAVAILABLE {
			return d, err
		}
		wait := min(time.Second<<min(failures, 5), 30*time.Second) // 2 s doubling to 30 s
		retrying(err, wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// deadLocalProcess reports whether a lease owner is a certfleet process of
// this host that no longer runs. Owners on other hosts, or with names not
// made by manager.DefaultInstance, are never reported dead: their leases
// expire on their own.
func deadLocalProcess(owner string) bool {
	host, pid, ok := manager.ParseInstance(owner)
	if !ok {
		return false
	}
	if me, err := os.Hostname(); err != nil || me != host {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// startResponders listens for the challenges the config uses, and those
// whose listen address it sets (config.RespondsTo: an API-only set-up).
func (d *Daemon) startResponders(ctx context.Context, store certfleet.Store, tokens *http01.Tokens, alpn *answers.Cache, opts Options) error {
	d.serveCtx, d.stopServe = context.WithCancel(context.WithoutCancel(ctx))
	cfg := d.Config
	if ln := opts.HTTP01Listener; ln != nil || cfg.RespondsTo(certfleet.ChallengeHTTP01) {
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", cfg.HTTP01Listen); err != nil {
				return listenError("http-01", "[http01] listen", cfg.HTTP01Listen, 80, err)
			}
		}
		d.listeners = append(d.listeners, ln)
		d.HTTP01Addr = ln.Addr().String()
		r := &http01.Responder{Store: store, Tokens: tokens, Logger: d.Logger}
		d.serve("http-01 responder", func() error { return r.Serve(d.serveCtx, ln) })
		f := &answers.Follower{Cache: tokens, Store: store, Type: certfleet.ChallengeHTTP01, Logger: d.Logger}
		d.serve("http-01 answers", func() error { f.Run(d.serveCtx); return nil })
		d.Logger.Info("http-01 responder listening", "addr", d.HTTP01Addr)
	}
	if ln := opts.TLSALPN01Listener; ln != nil || cfg.RespondsTo(certfleet.ChallengeTLSALPN01) {
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", cfg.TLSALPN01Listen); err != nil {
				return listenError("tls-alpn-01", "[tlsalpn01] listen", cfg.TLSALPN01Listen, 443, err)
			}
		}
		d.listeners = append(d.listeners, ln)
		d.TLSALPN01Addr = ln.Addr().String()
		r := &tlsalpn01.Responder{Store: store, Answers: alpn, Logger: d.Logger}
		d.serve("tls-alpn-01 responder", func() error { return r.Serve(d.serveCtx, ln) })
		f := &answers.Follower{Cache: alpn, Store: store, Type: certfleet.ChallengeTLSALPN01, Logger: d.Logger}
		d.serve("tls-alpn-01 answers", func() error { f.Run(d.serveCtx); return nil })
		d.Logger.Info("tls-alpn-01 responder listening", "addr", d.TLSALPN01Addr)
	}
	return nil
}

func (d *Daemon) serve(what string, fn func() error) {
	d.serveWG.Add(1)
	go func() {
		defer d.serveWG.Done()
		if err := fn(); err != nil && d.serveCtx.Err() == nil {
			d.Logger.Error(what+" stopped", certfleet.LogError, err)
			select {
			case d.errs <- fmt.Errorf("%s: %w", what, err):
			default:
			}
		}
	}()
}

// listenError explains the usual cause of a failed listen on a CA port.
func listenError(what, key, addr string, port int, err error) error {
	hint := ""
	if errors.Is(err, syscall.EACCES) {
		hint = fmt.Sprintf("; ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which certfleet)), or set %s to a high port and forward port %d to it", key, port)
	} else if errors.Is(err, syscall.EADDRINUSE) {
		hint = fmt.Sprintf("; another program (a web server?) holds it: forward /.well-known/acme-challenge/ to certfleet on another port set with %s, or use challenge = \"webroot\"", key)
	}
	return fmt.Errorf("%s responder: listen on %q (%s): %w%s", what, addr, key, err, hint)
}

// Errors reports responder failures while the daemon runs.
func (d *Daemon) Errors() <-chan error { return d.errs }

// Close stops the responders and closes the store.
func (d *Daemon) Close() error {
	if d.stopServe != nil {
		d.stopServe()
	}
	for _, ln := range d.listeners {
		_ = ln.Close()
	}
	d.serveWG.Wait()
	if d.Store != nil {
		return d.Store.Close()
	}
	return nil
}

// webrootRouter answers http-01 for "webroot" certificates by writing into
// the web root configured for the identifier's certificate(s), or, for a
// certificate requested over the API, into the [webroots] entry it names.
type webrootRouter struct {
	byIdentifier map[string][]*webroot.Solver
	named        map[string]*webroot.Solver
}

func newWebrootRouter(cfg *config.Config) *webrootRouter {
	r := &webrootRouter{byIdentifier: make(map[string][]*webroot.Solver), named: make(map[string]*webroot.Solver)}
	for name, dir := range cfg.Webroots {
		r.named[name] = &webroot.Solver{Dir: dir}
	}
	solvers := make(map[string]*webroot.Solver)
	for _, c := range cfg.Certificates {
		if c.Spec.Challenge != certfleet.ChallengeWebroot {
			continue
		}
		s, ok := solvers[c.Webroot]
		if !ok {
			s = &webroot.Solver{Dir: c.Webroot}
			solvers[c.Webroot] = s
		}
		for _, id := range c.Spec.Identifiers {
			r.byIdentifier[id.Value] = append(r.byIdentifier[id.Value], s)
		}
	}
	return r
}

// solvers returns the web roots chal goes to.
func (r *webrootRouter) solvers(chal certfleet.Challenge) ([]*webroot.Solver, error) {
	if chal.Webroot == "" {
		return r.byIdentifier[chal.Identifier.Value], nil
	}
	if s, ok := r.named[chal.Webroot]; ok {
		return []*webroot.Solver{s}, nil
	}
	return nil, certfleet.Errorf(certfleet.EINVALID, "web root %q (for %q) is not in [webroots] of the config; add it there, or request the name with another web root", chal.Webroot, chal.Identifier.Value)
}

func (r *webrootRouter) Present(ctx context.Context, chal certfleet.Challenge) error {
	solvers, err := r.solvers(chal)
	if err != nil {
		return err
	}
	if len(solvers) == 0 {
		return certfleet.Errorf(certfleet.EINVALID, "no webroot is configured for %q", chal.Identifier.Value)
	}
	for _, s := range solvers {
		if err := s.Present(ctx, chal); err != nil {
			return err
		}
	}
	return nil
}

func (r *webrootRouter) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	solvers, err := r.solvers(chal)
	errs := []error{err}
	for _, s := range solvers {
		errs = append(errs, s.CleanUp(ctx, chal))
	}
	return errors.Join(errs...)
}
