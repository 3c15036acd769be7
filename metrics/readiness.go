package metrics

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

type checkinKey struct {
	agent, certificate string
	keyType            certfleet.KeyType
}

// checkinMemo remembers an agent's last two check-ins for one lineage: the
// store keeps only the newest report.
type checkinMemo struct{ last, prev time.Time }

type endpointKey struct {
	certificate string
	keyType     certfleet.KeyType
	endpoint    string
}

// readiness tracks what certfleet.Readiness needs beyond the store (the
// check-in before the newest, endpoint observations) and logs violations
// once when they appear and once when they clear.
type readiness struct {
	m *Metrics

	mu        sync.Mutex // guards the maps below
	checkins  map[checkinKey]checkinMemo
	endpoints map[endpointKey]certfleet.EndpointObservation
	logged    map[string]certfleet.ReadinessViolation // by Key: the violations in force, as logged
}

// evaluate computes the violations now and logs the changes.
func (r *readiness) evaluate(now time.Time, certs []certfleet.CurrentCertificate, reports []certfleet.AgentReport) []certfleet.ReadinessViolation {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := certfleet.ReadinessInput{Now: now, Certificates: certs, Agents: make([]certfleet.AgentCheckin, 0, len(reports))}
	for _, rep := range reports {
		k := checkinKey{rep.Agent, rep.Certificate, rep.KeyType}
		memo := r.checkins[k]
		if !rep.ReportedAt.Equal(memo.last) {
			if !memo.last.IsZero() && rep.ReportedAt.After(memo.last) {
				memo.prev = memo.last
			}
			memo.last = rep.ReportedAt
			r.checkins[k] = memo
		}
		in.Agents = append(in.Agents, certfleet.AgentCheckin{Report: rep, Previous: memo.prev})
	}
	for _, e := range r.endpoints {
		in.Endpoints = append(in.Endpoints, e)
	}
	vs := certfleet.Readiness(in)
	r.logChanges(vs)
	return vs
}

// logChanges logs each violation when it first appears and when it is gone:
// not at every scrape.
func (r *readiness) logChanges(vs []certfleet.ReadinessViolation) {
	now := make(map[string]certfleet.ReadinessViolation, len(vs))
	for _, v := range vs {
		now[v.Key()] = v
		if _, ok := r.logged[v.Key()]; !ok {
			r.m.logger.Warn("short-lived readiness: a step takes more than a tenth of the certificate's lifetime",
				certfleet.LogCertificate, v.Certificate, certfleet.LogKeyType, string(v.KeyType), "source", v.Source,
				"subject", v.Subject, "took", v.Measured.Round(time.Second), "limit", v.Limit.Round(time.Second), "detail", v.String())
		}
	}
	keys := make([]string, 0, len(r.logged))
	for k := range r.logged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := now[k]; !ok {
			v := r.logged[k]
			r.m.logger.Info("short-lived readiness restored", certfleet.LogCertificate, v.Certificate,
				certfleet.LogKeyType, string(v.KeyType), "source", v.Source, "subject", v.Subject)
		}
	}
	r.logged = now
}

// ObserveEndpoint records one endpoint check of a certificate lineage (the
// current certificate is that of keyType): whether the endpoint served the
// current certificate, and else which serial it served ("" for none).
// Endpoint reload lag is measured from these.
func (m *Metrics) ObserveEndpoint(certificate string, keyType certfleet.KeyType, endpoint, servedSerial string, current bool, at time.Time) {
	r := m.readiness
	r.mu.Lock()
	defer r.mu.Unlock()
	k := endpointKey{certificate, keyType, endpoint}
	o := r.endpoints[k]
	o.Certificate, o.KeyType, o.Endpoint = certificate, keyType, endpoint
	if !current && at.After(o.StaleAt) {
		o.StaleAt, o.StaleSerial = at, servedSerial
	}
	r.endpoints[k] = o
}

// RetainEndpoints forgets the endpoint observations keep rejects (the
// endpoints no longer configured): an endpoint removed while it served an
// old certificate is otherwise a violation until the next renewal.
func (m *Metrics) RetainEndpoints(keep func(certificate, endpoint string) bool) {
	r := m.readiness
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.endpoints {
		if !keep(k.certificate, k.endpoint) {
			delete(r.endpoints, k)
		}
	}
}

// CheckReadiness evaluates readiness from the store now (as a scrape
// does), logs what changed, and returns the violations. The daemon calls it
// periodically so warnings reach the log without a scrape.
func (m *Metrics) CheckReadiness(ctx context.Context) ([]certfleet.ReadinessViolation, error) {
	reports, err := m.agentReports(ctx)
	if err != nil {
		return nil, fmt.Errorf("readiness: %w", err)
	}
	certs, err := certfleet.CurrentCertificatesOf(ctx, m.store, m.readiness.needed(reports))
	if err != nil {
		return nil, fmt.Errorf("readiness: %w", err)
	}
	return m.readiness.evaluate(m.now(), certs, reports), nil
}

// agentReports lists every agent's reports (none without a FleetStore).
func (m *Metrics) agentReports(ctx context.Context) ([]certfleet.AgentReport, error) {
	if m.fleet == nil {
		return nil, nil
	}
	reports, err := m.fleet.AgentReports(ctx, certfleet.AgentReportFilter{})
	if err != nil {
		return nil, fmt.Errorf("list agent reports: %w", err)
	}
	return reports, nil
}

// needed returns the lineages readiness looks at: those an agent reported
// on or an endpoint was observed serving. Only their current certificates
// are kept for evaluate, not every certificate in the store.
func (r *readiness) needed(reports []certfleet.AgentReport) map[certfleet.JobKey]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	need := make(map[certfleet.JobKey]bool, len(reports)+len(r.endpoints))
	for _, rep := range reports {
		need[certfleet.JobKey{Spec: rep.Certificate, KeyType: rep.KeyType}] = true
	}
	for k := range r.endpoints {
		need[certfleet.JobKey{Spec: k.certificate, KeyType: k.keyType}] = true
	}
	return need
}
