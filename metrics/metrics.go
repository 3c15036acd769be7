// Package metrics exposes certfleet to Prometheus
// (github.com/prometheus/client_golang) on its own registry: what the store
// holds, read at each scrape (certificate validity, the job queue, leases,
// agent check-ins, short-lived readiness), and what happened, counted as it
// happens (renewal attempts and failures from the certfleet.Event stream,
// ACME request latency and challenge outcomes from acmeissuer's Observer).
//
// It serves no listener and checks no credentials: the daemon package
// mounts Handler on the API listener behind a token, or on [metrics] listen. It
// keeps no history and stores nothing; the audit trail is the store's.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric.
const Namespace = "certfleet"

// ACMEBuckets are the latency buckets of certfleet_acme_request_duration_seconds:
// from a local CA's few milliseconds to a public CA's slow finalize (Let's
// Encrypt answers most requests in 50-500 ms; finalize can take seconds).
var ACMEBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Metrics collects certfleet's metrics. Make one with New; it is safe for
// concurrent use. It implements certfleet.EventSink and acmeissuer.Observer.
type Metrics struct {
	store  certfleet.StatsStore
	fleet  certfleet.FleetStore // nil: no agent metrics from the store
	now    func() time.Time
	logger *slog.Logger
	reg    *prometheus.Registry

	attempts    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	deferred    *prometheus.CounterVec
	deploys     *prometheus.CounterVec
	deployFails *prometheus.CounterVec
	events      *prometheus.CounterVec
	acme        *prometheus.HistogramVec
	challenges  *prometheus.CounterVec
	checkins    *prometheus.CounterVec

	readiness *readiness
}

// Options configure New.
type Options struct {
	// Store is read at each scrape. Required.
	Store certfleet.StatsStore
	// Fleet, if set, gives the agents' last check-ins and the readiness
	// of their deploy paths.
	Fleet certfleet.FleetStore
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger gets scrape errors and readiness warnings (once per change);
	// nil discards.
	Logger *slog.Logger
}

var (
	_ certfleet.EventSink  = (*Metrics)(nil)
	_ prometheus.Collector = (*storeCollector)(nil)
)

// New returns Metrics registered on a registry of their own (with the Go
// runtime and process collectors), not on Prometheus's global default.
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{store: o.Store, fleet: o.Fleet, now: o.Now, logger: o.Logger, reg: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	m.attempts = counter("renewal_attempts_total",
		"Certificate orders finished, by outcome: issued (a lineage's first), renewed, failed.", "outcome")
	m.failures = counter("renewal_failures_total",
		"Failed certificate orders by reason: the ACME problem type's last part (unauthorized, dns, connection, rateLimited...) or an error class (unavailable, timeout...).", "reason")
	m.deferred = counter("renewals_deferred_total",
		"Work put off on purpose (a rate-limit budget), by reason.", "reason")
	m.deploys = counter("deploys_total",
		"Deploys of new certificates by outcome (ok, failed) and where: server (this instance wrote the files and ran the commands) or agent (an agent reported an install or a failure).", "outcome", "where")
	m.deployFails = counter("deploy_failures_total",
		"Failed deploys by reason and where (server, agent).", "reason", "where")
	m.events = counter("events_total",
		"Every event certfleet recorded (the audit trail's kinds).", "kind")
	m.challenges = counter("challenges_total",
		"ACME challenges that ended, by challenge type and outcome (valid, invalid).", "type", "outcome")
	m.checkins = counter("agent_checkins_total",
		"Agent reports received by this instance, by agent.", "agent")
	m.acme = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "acme_request_duration_seconds",
		Help:    "Latency of HTTP requests to ACME CAs, by CA directory, endpoint (newOrder, finalize, authz...) and status code (\"error\" when no response came).",
		Buckets: ACMEBuckets,
	}, []string{"ca", "endpoint", "status"})
	m.readiness = &readiness{m: m, checkins: map[checkinKey]checkinMemo{}, endpoints: map[endpointKey]certfleet.EndpointObservation{},
		logged: map[string]certfleet.ReadinessViolation{}}
	m.reg.MustRegister(m.attempts, m.failures, m.deferred, m.deploys, m.deployFails, m.events, m.challenges, m.checkins, m.acme,
		&storeCollector{m: m},
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics are on (for tests and for
// gathering without HTTP).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format. A store
// error fails only the store's metrics (logged); the counters are still
// served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{m.logger},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       30 * time.Second,
	})
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.l.Error("metrics scrape", "detail", v)
}

// RecordEvent implements certfleet.EventSink: it counts the event. It never
// fails.
func (m *Metrics) RecordEvent(_ context.Context, e certfleet.Event) error {
	m.events.WithLabelValues(e.Kind).Inc()
	switch e.Kind {
	case certfleet.EventIssued:
		m.attempts.WithLabelValues("issued").Inc()
	case certfleet.EventRenewed:
		m.attempts.WithLabelValues("renewed").Inc()
	case certfleet.EventOrderFailed:
		m.attempts.WithLabelValues("failed").Inc()
		m.failures.WithLabelValues(reason(e.Reason)).Inc()
	case certfleet.EventDeferred:
		m.deferred.WithLabelValues(reason(e.Reason)).Inc()
	case certfleet.EventDeployed:
		m.deploys.WithLabelValues("ok", where(e.Actor)).Inc()
	case certfleet.EventDeployFailed:
		m.deploys.WithLabelValues("failed", where(e.Actor)).Inc()
		m.deployFails.WithLabelValues(reason(e.Reason), where(e.Actor)).Inc()
	}
	return nil
}

// AgentCheckin counts one agent report (a check-in); cmd wires it to the
// API's httpapi.Server.OnAgentReport. The audit trail records only reports
// that change something, so check-ins do not come as events.
func (m *Metrics) AgentCheckin(r certfleet.AgentReport) {
	m.checkins.WithLabelValues(r.Agent).Inc()
}

// where tells a deploy by an agent from one by a certfleet instance.
func where(actor string) string {
	if _, ok := agentOf(actor); ok {
		return "agent"
	}
	return "server"
}

// reason keeps the label non-empty.
func reason(r string) string {
	if r == "" {
		return "unknown"
	}
	return r
}

// agentOf returns NAME of an "agent:NAME" actor.
func agentOf(actor string) (string, bool) {
	const p = "agent:"
	if len(actor) > len(p) && actor[:len(p)] == p {
		return actor[len(p):], true
	}
	return "", false
}

// ObserveRequest implements acmeissuer.Observer.
func (m *Metrics) ObserveRequest(ca, endpoint string, status int, took time.Duration) {
	s := "error"
	if status != 0 {
		s = strconv.Itoa(status)
	}
	m.acme.WithLabelValues(ca, endpoint, s).Observe(took.Seconds())
}

// ObserveChallenge implements acmeissuer.Observer.
func (m *Metrics) ObserveChallenge(_ string, challengeType, outcome string) {
	m.challenges.WithLabelValues(challengeType, outcome).Inc()
}
