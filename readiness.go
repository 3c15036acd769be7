package certfleet

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// ReadinessFraction is the safe share of a certificate's lifetime
// (NotAfter - NotBefore) that any one step of getting it in use may take: a
// tenth. Ours, from the short-lived readiness item: with renewal at
// a third or half of the lifetime left, a path that takes a tenth still
// leaves room for several failed attempts, and a 6-day or 24-hour
// certificate (14.4 h, 2.4 h) tolerates what a 90-day one hides.
const ReadinessFraction = 10

// Readiness sources: which step of the path is too slow.
const (
	// ReadinessAgentCheckin: the time between an agent's check-ins (its
	// full resyncs), measured from the reports it sends.
	ReadinessAgentCheckin = "agent_checkin"
	// ReadinessDeploy: from issuance until the agent reports the
	// certificate installed (or, while it has not, until now).
	ReadinessDeploy = "deploy"
	// ReadinessEndpointReload: from issuance until an endpoint serves the
	// certificate, as far as endpoint checks saw it serving an older one.
	ReadinessEndpointReload = "endpoint_reload"
)

// ReadinessLimit returns the longest a step may take for a certificate of
// the given lifetime; 0 for a lifetime that is not positive.
func ReadinessLimit(lifetime time.Duration) time.Duration {
	if lifetime <= 0 {
		return 0
	}
	return lifetime / ReadinessFraction
}

// AgentCheckin is an agent's latest report for one certificate lineage,
// with the check-in before it when known (a report replaces the previous
// one in the store, so only a process that saw both knows it).
type AgentCheckin struct {
	Report AgentReport
	// Previous is the ReportedAt of the report before Report; zero when
	// unknown.
	Previous time.Time
}

// EndpointObservation is what endpoint checks saw of one endpoint serving
// one certificate lineage.
type EndpointObservation struct {
	Certificate string
	KeyType     KeyType
	// Endpoint names it as endpoint.Target renders it ("tls host:port
	// (SNI name)", with the key family of a dual certificate).
	Endpoint string
	// StaleAt is the newest check at which the endpoint served something
	// other than the lineage's current certificate of that moment, and
	// StaleSerial what it served then (hex, "" when it served no
	// certificate or the check failed). Zero: never seen stale.
	StaleAt     time.Time
	StaleSerial string
}

// ReadinessInput is everything Readiness looks at.
type ReadinessInput struct {
	Now          time.Time
	Certificates []CurrentCertificate
	Agents       []AgentCheckin
	Endpoints    []EndpointObservation
}

// ReadinessViolation is one step of one certificate's path that takes
// longer than ReadinessLimit of the certificate's lifetime.
type ReadinessViolation struct {
	Certificate string
	KeyType     KeyType
	Source      string // ReadinessAgentCheckin, ReadinessDeploy, ReadinessEndpointReload
	Subject     string // the agent's name or the endpoint
	// Measured is how long the step took (or has taken so far, when
	// Pending); Limit the most it may take; Lifetime the certificate's.
	Measured, Limit, Lifetime time.Duration
	// Pending: the step has not finished yet (not installed, still
	// stale), so Measured keeps growing.
	Pending bool
	// Serial is the current certificate's.
	Serial string
}

// Key identifies the violation regardless of how long it measures, so a
// caller can tell a new violation from one it already reported.
func (v ReadinessViolation) Key() string {
	return v.Certificate + "\x00" + string(v.KeyType) + "\x00" + v.Source + "\x00" + v.Subject
}

// String says what is too slow, by how much, and what to change.
func (v ReadinessViolation) String() string {
	m := v.Measured.Round(time.Second)
	limit := fmt.Sprintf("more than %s (1/%d of the certificate's %s lifetime)", v.Limit.Round(time.Second), ReadinessFraction, v.Lifetime.Round(time.Second))
	switch v.Source {
	case ReadinessAgentCheckin:
		return fmt.Sprintf("%s (%s): agent %s checks in every %s or less often, %s: lower the agent's resync interval or use longer-lived certificates", v.Certificate, v.KeyType, v.Subject, m, limit)
	case ReadinessDeploy:
		if v.Pending {
			return fmt.Sprintf("%s (%s): agent %s has not installed serial %s %s after issuance, %s: check the agent", v.Certificate, v.KeyType, v.Subject, v.Serial, m, limit)
		}
		return fmt.Sprintf("%s (%s): agent %s installed serial %s %s after issuance, %s: the deploy path is too slow", v.Certificate, v.KeyType, v.Subject, v.Serial, m, limit)
	case ReadinessEndpointReload:
		return fmt.Sprintf("%s (%s): endpoint %s still served an older certificate %s after serial %s was issued, %s: check its reload command", v.Certificate, v.KeyType, v.Subject, m, v.Serial, limit)
	}
	return fmt.Sprintf("%s (%s): %s %s took %s, %s", v.Certificate, v.KeyType, v.Source, v.Subject, m, limit)
}

// Readiness returns the steps that take longer than a tenth of their
// certificate's lifetime, ordered by certificate, key type, source and
// subject. Reports and observations of lineages without a current
// certificate are ignored. Pure: the same input gives the same output.
func Readiness(in ReadinessInput) []ReadinessViolation {
	current := make(map[JobKey]CurrentCertificate, len(in.Certificates))
	for _, c := range in.Certificates {
		current[JobKey{Spec: c.Spec, KeyType: c.KeyType}] = c
	}
	var out []ReadinessViolation
	add := func(c CurrentCertificate, source, subject string, measured time.Duration, pending bool) {
		limit := ReadinessLimit(c.Lifetime())
		if limit <= 0 || measured <= limit {
			return
		}
		out = append(out, ReadinessViolation{Certificate: c.Spec, KeyType: c.KeyType, Source: source, Subject: subject,
			Measured: measured, Limit: limit, Lifetime: c.Lifetime(), Pending: pending, Serial: c.Serial})
	}
	for _, a := range in.Agents {
		r := a.Report
		c, ok := current[JobKey{Spec: r.Certificate, KeyType: r.KeyType}]
		if !ok || r.ReportedAt.IsZero() {
			continue
		}
		// The check-in interval: the gap between the last two check-ins
		// when known, and at least the time since the last one.
		interval := in.Now.Sub(r.ReportedAt)
		if !a.Previous.IsZero() {
			interval = max(interval, r.ReportedAt.Sub(a.Previous))
		}
		add(c, ReadinessAgentCheckin, r.Agent, interval, false)

		if r.Fingerprint != "" && r.Fingerprint == c.Fingerprint {
			installed := r.InstalledAt
			if installed.IsZero() {
				installed = r.ReportedAt
			}
			add(c, ReadinessDeploy, r.Agent, max(installed.Sub(c.IssuedAt), 0), false)
		} else {
			add(c, ReadinessDeploy, r.Agent, in.Now.Sub(c.IssuedAt), true)
		}
	}
	for _, e := range in.Endpoints {
		c, ok := current[JobKey{Spec: e.Certificate, KeyType: e.KeyType}]
		if !ok || !e.StaleAt.After(c.IssuedAt) || e.StaleSerial == c.Serial && e.StaleSerial != "" {
			continue
		}
		// Seen serving something else after the current certificate was
		// issued: at least this much lag. Pending until a check sees it
		// serving the current one (then StaleAt stops moving).
		add(c, ReadinessEndpointReload, e.Endpoint, e.StaleAt.Sub(c.IssuedAt), false)
	}
	slices.SortFunc(out, func(a, b ReadinessViolation) int {
		return cmp.Or(cmp.Compare(a.Certificate, b.Certificate), cmp.Compare(a.KeyType, b.KeyType),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.Subject, b.Subject))
	})
	return out
}
