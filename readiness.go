package certfleet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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

// Name readiness (issue 14): before certfleet places an order for a name
// it has not yet proven (first issuance, a name new to its certificate, or
// after a failed validation), a self-test checks that the CA could
// validate it now, the way the CA would. A name that cannot pass is
// "waiting": no order and no failed validation are spent on it; it is
// re-tested on its own backoff (RetestDelay) and leaves its certificate's
// pack until it passes. This is a different readiness from the one above
// (how fast a certificate gets into use); both answer "is the path in
// place", one before the order, one after.

// Why a name waits, for the metric's label and for docs/readiness.md,
// which says what each means and how to fix it.
const (
	// WaitDNS: the name does not resolve, or resolves to an address the
	// probe did not reach certfleet through (http-01, tls-alpn-01).
	WaitDNS = "dns"
	// WaitHTTP: the name resolves and something answers on port 80, but
	// the probe token's request did not reach certfleet (no forwarding
	// rule for /.well-known/acme-challenge/, a wrong redirect).
	WaitHTTP = "http"
	// WaitTLSALPN: the acme-tls/1 probe handshake did not reach
	// certfleet's tls-alpn-01 responder.
	WaitTLSALPN = "tls_alpn"
	// WaitDNS01: a dns-01 precondition fails: zone, CNAME delegation
	// (as the public resolvers see it), or the provider's credentials.
	WaitDNS01 = "dns01"
	// WaitPersist: the dns-persist-01 record is missing, names another
	// account or CA, lacks policy=wildcard for a wildcard, or is past
	// its persistUntil.
	WaitPersist = "dns_persist"
	// WaitProbe: the self-test itself could not run (store unavailable
	// for the probe token, no resolver answered).
	WaitProbe = "probe"
)

// Default re-test backoff of a waiting name: the first re-test after
// DefaultRetestMin, doubling to DefaultRetestMax. Ours: a DNS change
// usually reaches the resolvers within minutes (TTLs of 300 s are
// common), and a forwarding rule is fixed by a person who then expects
// to see the effect soon; an hour bounds the delay after a fix nobody
// announced (an API retry tests at once).
const (
	DefaultRetestMin = 30 * time.Second
	DefaultRetestMax = time.Hour
)

// RetestDelay is how long a name that has failed tests consecutive
// self-tests (tests >= 1) waits before the next: min doubled per earlier
// failure, capped at max. Zero min or max take the defaults.
func RetestDelay(tests int, min, max time.Duration) time.Duration {
	if min <= 0 {
		min = DefaultRetestMin
	}
	if max <= 0 {
		max = DefaultRetestMax
	}
	d := min
	for i := 1; i < tests && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// SelfTestResult is the outcome of one name's self-test.
type SelfTestResult struct {
	Identifier Identifier
	// Code is "" when the name can pass, else one of the Wait* reasons.
	Code string
	// Reason says in words what was found and what to fix, e.g.
	// "www.example.com resolves to 198.51.100.7, and nothing there
	// answered the probe: point it at certfleet".
	Reason string
}

// OK reports whether the name can pass its challenge now.
func (r SelfTestResult) OK() bool { return r.Code == "" }

// SelfTester checks, without contacting the CA, whether names can pass
// their certificate's challenge now, the way the CA would see them
// (package selftest). Implementations must be safe for concurrent use,
// honour ctx, and return one result per identifier in ids, in order; an
// error is for a tester that could not run at all (the caller orders as
// it would without self-tests). A test of one name should take seconds,
// not minutes.
type SelfTester interface {
	SelfTest(ctx context.Context, spec CertificateSpec, ids []Identifier) ([]SelfTestResult, error)
}

// WaitingName is a name that failed its latest self-test: it is left out
// of its certificate's orders until a re-test passes.
type WaitingName struct {
	Spec       string
	Identifier Identifier
	Challenge  ChallengeType
	Code       string // a Wait* reason
	Reason     string // in words
	// Since is the first failed test of this streak; CheckedAt the
	// latest; Tests how many failed in a row; NextAt the next re-test.
	Since, CheckedAt, NextAt time.Time
	Tests                    int
	Tenant                   string
}

// WaitingFilter selects waiting names. Zero fields match everything.
type WaitingFilter struct {
	Spec   string
	Tenant string
	Limit  int // 0: all
}

// ReadinessStore keeps the waiting names. Safe for concurrent use.
type ReadinessStore interface {
	// SetWaiting records, for spec, the names in waiting (replacing what
	// was recorded of them) and forgets those in ready, in one
	// transaction.
	SetWaiting(ctx context.Context, spec string, waiting []WaitingName, ready []Identifier) error
	// WaitingNames lists waiting names ordered by spec and identifier.
	WaitingNames(ctx context.Context, f WaitingFilter) ([]WaitingName, error)
	// RetestNow makes every waiting name of spec due for a re-test at
	// once (an operator's retry) and returns how many there were.
	RetestNow(ctx context.Context, spec string) (int, error)
	// CountWaiting counts the waiting names by Code (the metric).
	CountWaiting(ctx context.Context) (map[string]int, error)
}

// PersistIdentity is what a dns-persist-01 record must name to authorize
// an account (draft-ietf-acme-dns-persist-01 §4.1, as Pebble v2.10.1 and
// Let's Encrypt check it): the account's URL (accounturi) and one of the
// CA's issuer domain names (the challenge's issuer-domain-names, §3.1).
// Draft -02 replaces the URL by a hashed URI; certfleet does not speak
// that form yet (docs/readiness.md).
type PersistIdentity struct {
	AccountURL        string
	IssuerDomainNames []string
}

// PersistRecordName is the name of the dns-persist-01 TXT record for a
// domain (a wildcard's base name): draft-ietf-acme-dns-persist §4: "The
// Validation Domain Name is formed by prepending the label
// '_validation-persist' to the domain name being validated."
func PersistRecordName(domain string) string {
	return "_validation-persist." + strings.TrimSuffix(strings.TrimPrefix(domain, "*."), ".")
}

// PersistRecordValue is the TXT value that authorizes the account of id
// through the CA's issuer domain name issuer: draft-ietf-acme-dns-persist
// §4.1 uses the issue-value syntax of RFC 8659 §4.2, "issuer-domain-name;
// accounturi=URL", with "policy=wildcard" (§4.1 item 4, §5) to allow
// wildcards and subdomains too.
func PersistRecordValue(issuer, accountURL string, wildcard bool) string {
	v := issuer + "; accounturi=" + accountURL
	if wildcard {
		v += "; policy=wildcard"
	}
	return v
}

// PersistIdentifier is an optional interface of an Issuer that can say
// what a dns-persist-01 record must name for its account (acmeissuer).
type PersistIdentifier interface {
	PersistIdentity(ctx context.Context) (PersistIdentity, error)
}
