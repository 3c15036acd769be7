package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/endpoint"
)

// Endpoint checks: is the newest certificate the one each endpoint serves?
const (
	// endpointInterval is how often every endpoint is checked.
	endpointInterval = time.Hour
	// endpointSettle is the wait after a certificate is written before its
	// endpoints are checked: the reload command has run, but a service may
	// take a moment to pick the new files up.
	endpointSettle = 10 * time.Second
	// endpointConcurrency bounds checks in flight.
	endpointConcurrency = 8
)

// endpointWarnBefore is how close to expiry a served current certificate
// may get before its endpoint is flagged: a fifth of its lifetime (18 days
// of 90, a day of 6). By then certfleet has renewed it, so a certificate that
// close to expiry still being served means renewal or deployment failed.
func endpointWarnBefore(iss certfleet.Issuance) time.Duration {
	return iss.NotAfter.Sub(iss.NotBefore) / 5
}

// checkEndpoints checks the endpoints of the given certificates (all
// configured ones when names is empty), each once per key family of a dual
// certificate, and compares what is served with the archive.
func CheckEndpoints(ctx context.Context, store certfleet.Store, cfg *config.Config, checker *endpoint.Checker, now time.Time, names ...string) []endpoint.Finding {
	type work struct {
		cert   config.Certificate
		target endpoint.Target
		want   endpoint.Expectation
	}
	var todo []work
	for _, c := range cfg.Certificates {
		if len(c.Endpoints) == 0 || len(names) > 0 && !contains(names, c.Spec.Name) {
			continue
		}
		want := endpoint.Expectation{}
		for _, kt := range c.Spec.KeyTypes {
			job, err := store.Job(ctx, certfleet.JobKey{Spec: c.Spec.Name, KeyType: kt})
			if err != nil || job.CurrentID == 0 {
				continue
			}
			if iss, err := store.Issuance(ctx, job.CurrentID); err == nil {
				want.Current = append(want.Current, iss)
				want.WarnBefore = max(want.WarnBefore, endpointWarnBefore(iss))
			}
		}
		want.Archive, _ = store.Issuances(ctx, certfleet.IssuanceFilter{Spec: c.Spec.Name, Limit: 50})
		for _, t := range endpointTargets(c) {
			todo = append(todo, work{c, t, want})
		}
	}
	results := make([]endpoint.Finding, len(todo))
	sem := make(chan struct{}, endpointConcurrency)
	var wg sync.WaitGroup
	for i, w := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := endpoint.Finding{Certificate: w.cert.Spec.Name, Target: w.target}
			r, err := checker.Check(ctx, w.target)
			if err != nil {
				res.Err = err
			} else {
				res.Verdict = endpoint.Compare(r, w.want, now)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	return results
}

// endpointTargets lists what is checked of a certificate's endpoints: each
// once, or once per key family of a dual certificate (each family must be
// served).
func endpointTargets(c config.Certificate) []endpoint.Target {
	var out []endpoint.Target
	for _, t := range c.Endpoints {
		if len(c.Spec.KeyTypes) > 1 {
			for _, kt := range c.Spec.KeyTypes {
				tf := t
				tf.KeyFamily = kt.Family()
				out = append(out, tf)
			}
			continue
		}
		out = append(out, t)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// endpointWatcher checks endpoints after each new certificate and on a
// schedule, and logs what it finds: an endpoint serving an old, foreign or
// expiring certificate is an error in the log (and in `status -endpoints`).
type endpointWatcher struct {
	d       *Daemon
	checker *endpoint.Checker
	due     chan string // certificate names written, to check after endpointSettle

	now  func() time.Time // the daemon's clock
	mu   sync.Mutex
	last map[string]alert.EndpointObservation // by endpointKey: the latest check, for alerts
}

func endpointKey(certificate, target string) string { return certificate + "\x00" + target }

// EndpointObservations implements alert.EndpointSource: the latest check of
// every configured endpoint (never-checked ones without a time).
func (w *endpointWatcher) EndpointObservations() []alert.EndpointObservation {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []alert.EndpointObservation
	for _, c := range w.d.CurrentConfig().Certificates {
		for _, t := range endpointTargets(c) {
			o, ok := w.last[endpointKey(c.Spec.Name, t.String())]
			if !ok {
				o = alert.EndpointObservation{Certificate: c.Spec.Name, Endpoint: t.String()}
			}
			out = append(out, o)
		}
	}
	return out
}

// record keeps a check's result for EndpointObservations.
func (w *endpointWatcher) record(r endpoint.Finding, at time.Time) {
	o := alert.EndpointObservation{Certificate: r.Certificate, Endpoint: r.Target.String(), Status: string(r.Verdict.Status),
		Message: r.Summary(), ServedSerial: r.Verdict.ServedSerial, ServedNotAfter: r.Verdict.ServedNotAfter,
		ServedIssuance: r.Verdict.ServedIssuance, CheckedAt: at}
	if r.Err != nil {
		o.Status = "error"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[string]alert.EndpointObservation{}
	}
	w.last[endpointKey(o.Certificate, o.Endpoint)] = o
}

func newEndpointWatcher(d *Daemon) *endpointWatcher {
	return &endpointWatcher{d: d, checker: &endpoint.Checker{Logger: d.Logger}, due: make(chan string, 64), now: time.Now}
}

// written notes that a certificate's files changed. It never blocks.
func (w *endpointWatcher) written(name string) {
	select {
	case w.due <- name:
	default: // a backlog: the hourly pass catches up
	}
}

// run checks until ctx ends.
func (w *endpointWatcher) run(ctx context.Context) {
	tick := time.NewTicker(endpointInterval)
	defer tick.Stop()
	w.pass(ctx) // at start: what is served now?
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.pass(ctx)
		case name := <-w.due:
			select {
			case <-ctx.Done():
				return
			case <-time.After(endpointSettle):
			}
			w.pass(ctx, name)
		}
	}
}

func (w *endpointWatcher) pass(ctx context.Context, names ...string) {
	cfg := w.d.CurrentConfig()
	now := w.now()
	for _, r := range CheckEndpoints(ctx, w.d.Store, cfg, w.checker, now, names...) {
		if ctx.Err() != nil {
			return
		}
		w.d.observeEndpoint(cfg, r, time.Now()) // reload lag, for short-lived readiness
		w.record(r, now)
		log := w.d.Logger.With(certfleet.LogCertificate, r.Certificate, "endpoint", r.Target.String())
		switch {
		case r.OK():
			log.Info("endpoint serves the current certificate", certfleet.LogSerial, certfleet.FormatSerial(r.Verdict.ServedSerial))
		case r.Err != nil:
			log.Error("endpoint check failed", certfleet.LogError, r.Err)
		default:
			log.Error("endpoint does not serve the current certificate", "status", string(r.Verdict.Status), "detail", r.Verdict.Message)
		}
	}
	if w.d.Alerts != nil {
		w.d.Alerts.Wake() // new observations
	}
}
