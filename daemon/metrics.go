package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/endpoint"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/metrics"
)

// newMetrics makes the daemon's metrics when the store can answer scrapes
// (both stores can); nil otherwise.
func newMetrics(store certfleet.Store, log *slog.Logger) *metrics.Metrics {
	ss, ok := store.(certfleet.StatsStore)
	if !ok {
		return nil
	}
	fleet, _ := store.(certfleet.FleetStore)
	return metrics.New(metrics.Options{Store: ss, Fleet: fleet, Logger: log.With("component", "metrics")})
}

// observer returns the daemon's metrics as an acmeissuer.Observer, or a nil
// interface (never a typed nil) without metrics.
func (d *Daemon) observer() acmeissuer.Observer {
	if d.Metrics == nil {
		return nil
	}
	return d.Metrics
}

// apiHandler adds /metrics, behind a token, to the API's handler.
func (d *Daemon) apiHandler(srv *httpapi.Server) http.Handler {
	if d.Metrics == nil {
		return srv.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.MetricsHandler(d.Metrics.Handler()))
	mux.Handle("/", srv.Handler())
	return mux
}

// StartMetrics serves /metrics without authentication on ln, or on
// [metrics] listen when ln is nil, until the daemon closes. It returns the
// bound address ("" when neither is set).
func (d *Daemon) StartMetrics(ctx context.Context, ln net.Listener) (string, error) {
	listen := d.Config.Metrics.Listen
	if d.Metrics == nil || ln == nil && listen == "" {
		return "", nil
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", listen); err != nil {
			return "", fmt.Errorf("metrics: listen on %q ([metrics] listen): %w", listen, err)
		}
	}
	if d.serveCtx == nil {
		d.serveCtx, d.stopServe = context.WithCancel(context.WithoutCancel(ctx))
	}
	d.listeners = append(d.listeners, ln)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.Metrics.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "certfleet serves only /metrics here", http.StatusNotFound)
	})
	addr := ln.Addr().String()
	d.serve("metrics listener", func() error { return httpapi.Serve(d.serveCtx, ln, mux) })
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			d.Logger.Warn("the metrics listener is not on loopback: anyone who reaches it reads every certificate's name; restrict it to the scraper (firewall) or scrape /metrics on [api] listen with a token",
				"addr", addr)
		}
	}
	d.Logger.Info("metrics listening", "addr", addr, "path", "/metrics")
	return addr, nil
}

// watchReadiness checks short-lived readiness every [metrics]
// readiness_interval until ctx ends, so that violations reach the log
// (once each, when they appear and when they clear) without a scrape.
func (d *Daemon) watchReadiness(ctx context.Context) {
	if d.Metrics == nil {
		return
	}
	every := d.Config.Metrics.ReadinessInterval
	if every <= 0 {
		every = config.DefaultReadinessInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := d.Metrics.CheckReadiness(ctx); err != nil && ctx.Err() == nil {
			d.Logger.Warn("short-lived readiness: could not check; will retry", certfleet.LogError, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// observeEndpoint feeds an endpoint check to the readiness metrics: which
// lineage it checked, and whether it served the current certificate.
func (d *Daemon) observeEndpoint(cfg *config.Config, r endpoint.Finding, at time.Time) {
	if d.Metrics == nil || r.Err != nil || r.Verdict.Status == endpoint.StatusUnknown {
		return
	}
	c, ok := cfg.Certificate(r.Certificate)
	if !ok || len(c.Spec.KeyTypes) == 0 {
		return
	}
	kt := c.Spec.KeyTypes[0]
	for _, k := range c.Spec.KeyTypes {
		if r.Target.KeyFamily != "" && k.Family() == r.Target.KeyFamily {
			kt = k
		}
	}
	current := r.Verdict.ServedSerial != "" && r.Verdict.ServedSerial == r.Verdict.WantSerial
	d.Metrics.ObserveEndpoint(r.Certificate, kt, r.Target.String(), r.Verdict.ServedSerial, current, at)
}

// retainEndpoints makes the readiness metrics forget the endpoints cfg no
// longer lists.
func (d *Daemon) retainEndpoints(cfg *config.Config) {
	if d.Metrics == nil {
		return
	}
	keep := map[[2]string]bool{}
	for _, c := range cfg.Certificates {
		for _, t := range endpointTargets(c) {
			keep[[2]string{c.Spec.Name, t.String()}] = true
		}
	}
	d.Metrics.RetainEndpoints(func(certificate, endpoint string) bool { return keep[[2]string{certificate, endpoint}] })
}

// Readiness checks short-lived readiness as certfleet status shows it: from
// the agents' check-ins and deploys in store, and from the endpoint checks
// in results (made just now), as of now.
func Readiness(ctx context.Context, store certfleet.Store, cfg *config.Config, now time.Time, results []endpoint.Finding) ([]certfleet.ReadinessViolation, error) {
	ss, ok := store.(certfleet.StatsStore)
	if !ok {
		return nil, nil
	}
	fleet, _ := store.(certfleet.FleetStore)
	m := metrics.New(metrics.Options{Store: ss, Fleet: fleet, Now: func() time.Time { return now }})
	d := &Daemon{Metrics: m}
	for _, r := range results {
		d.observeEndpoint(cfg, r, now)
	}
	return m.CheckReadiness(ctx)
}
