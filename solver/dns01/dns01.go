// Package dns01 answers ACME dns-01 challenges (RFC 8555 §8.4): it puts a
// TXT record under _acme-challenge.<name>, follows a CNAME at that name to
// where the record really goes (CNAME delegation), finds the zone that holds
// it by walking SOA records, and waits until every authoritative nameserver
// of that zone serves the value before the challenge is answered.
//
// Writing the record is a Provider's job: one subpackage per kind of DNS
// server or API (rfc2136, exec, webhook, acmedns). Solver picks the provider
// for each identifier, and tracks the propagation of every record presented
// at once in one shared loop, so a renewal wave of many orders waits for all
// its records together and each challenge is answered as soon as its own
// record is everywhere.
//
// It does not talk to the CA: acmeissuer calls Present, Wait and CleanUp.
// It does not serve DNS either.
package dns01

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Defaults of Solver's settings.
const (
	// DefaultPropagationTimeout is how long Wait waits for a record to be
	// served by every authoritative server. Two minutes outlasts the
	// NOTIFY and transfer of a healthy secondary by far; a provider whose
	// API publishes slower needs a longer one.
	DefaultPropagationTimeout = 2 * time.Minute
	// DefaultPollInterval is the first pause between checks of a record;
	// it doubles after each miss up to DefaultMaxPollInterval, so a fast
	// server answers in well under a second and a slow one is not
	// hammered.
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultMaxPollInterval = 8 * time.Second
	// DefaultProgressInterval is how often a wait in progress is logged.
	DefaultProgressInterval = 5 * time.Second
	// CleanupTimeout bounds each provider call made during cleanup.
	CleanupTimeout = time.Minute
)

// Record is one TXT record a provider must add or remove.
type Record struct {
	// Domain is the identifier being proven (a wildcard's base name).
	Domain string
	// FQDN is where the record goes: _acme-challenge.<Domain>. or, with
	// CNAME delegation, the end of its CNAME chain. Fully qualified,
	// lower case.
	FQDN string
	// Zone is the zone that holds FQDN, found by the SOA walk; fully
	// qualified.
	Zone string
	// Value is the TXT value: base64url(SHA-256(key authorization)).
	Value string
	// KeyAuthorization is the key authorization Value is the digest of
	// (RFC 8555 §8.1), for providers built on a library that computes the
	// value itself (package lego). It is not a credential: the token is
	// public and the thumbprint is of the account's public key. Empty
	// when Value was made some other way (a preflight's test value).
	KeyAuthorization string
}

// Provider writes TXT records into a DNS zone. Implementations must be safe
// for concurrent use and honour ctx.
//
// Present adds rec.Value to the TXT values at rec.FQDN and must keep every
// other value there: a wildcard and its apex in one order put two values
// under one name. CleanUp removes only rec.Value; removing a value that is
// not there is not an error (CleanUp runs after failures and restarts).
type Provider interface {
	Present(ctx context.Context, rec Record) error
	CleanUp(ctx context.Context, rec Record) error
}

// Checker is an optional interface of a Provider: Check proves that the
// provider may write rec (credentials valid, permission granted), without
// changing the zone where the API allows that; a provider with no read-only
// way may add and remove a test value (rec.Value, with rec.KeyAuthorization
// empty) and must say so in its documentation. The solver runs it before an
// order is placed (see Solver.Preflight).
type Checker interface {
	Check(ctx context.Context, rec Record) error
}

// RecordName returns the name of the dns-01 TXT record for an identifier:
// RFC 8555 §8.4: "The client constructs the validation domain name by
// prepending the label "_acme-challenge" to the domain name being
// validated". A wildcard's record is its base name's (RFC 8555 §7.1.3: the
// authorization is for the name without "*.").
func RecordName(domain string) string {
	domain = strings.TrimPrefix(strings.ToLower(domain), "*.")
	return canonical("_acme-challenge." + domain)
}

// RecordValue returns the TXT value for a key authorization. RFC 8555 §8.4:
// "The record provisioned to the DNS contains the base64url encoding of
// this digest", the SHA-256 digest of the key authorization.
func RecordValue(keyAuthorization string) string {
	sum := sha256.Sum256([]byte(keyAuthorization))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Solver is a certfleet.Solver and certfleet.Waiter for dns-01. Set the
// fields before first use; the zero value of each optional field is its
// default.
type Solver struct {
	// Providers maps provider names to providers. Required.
	Providers map[string]Provider
	// Routes maps identifiers (lower case, wildcards as their base name)
	// to provider names; identifiers not in it use Route, then
	// DefaultProvider.
	Routes map[string]string
	// Route, when set, names the provider of identifiers Routes does not
	// list (those of inventory sources, which change while the solver
	// runs); "" falls back to DefaultProvider. It must be safe for
	// concurrent use.
	Route           func(domain string) string
	DefaultProvider string
	// Resolver finds CNAME targets, zones and nameservers.
	Resolver *Resolver
	// PropagationTimeout: see DefaultPropagationTimeout.
	PropagationTimeout time.Duration
	// PollInterval and MaxPollInterval: see DefaultPollInterval.
	PollInterval, MaxPollInterval time.Duration
	// ProgressInterval: see DefaultProgressInterval.
	ProgressInterval time.Duration
	// Journal, when set, is a file where presented records are kept until
	// they are cleaned up, so that records left behind by a crash are
	// removed at the next start (see CleanupJournal).
	Journal string
	// Logger; nil discards.
	Logger *slog.Logger

	initOnce sync.Once
	tr       *tracker
	jr       *journal

	mu        sync.Mutex // guards presented, preflight
	presented map[string]presented
	preflight map[string]time.Time // provider+zone → last successful check
}

var (
	_ certfleet.Solver = (*Solver)(nil)
	_ certfleet.Waiter = (*Solver)(nil)
)

type presented struct {
	provider string
	rec      Record
}

func (s *Solver) init() {
	s.initOnce.Do(func() {
		lg := s.Logger
		if lg == nil {
			lg = slog.New(slog.DiscardHandler)
		}
		s.Logger = lg
		s.tr = newTracker(s)
		s.presented = make(map[string]presented)
		s.preflight = make(map[string]time.Time)
		if s.Journal != "" {
			s.jr = &journal{path: s.Journal}
		}
	})
}

func (s *Solver) resolver() *Resolver {
	if s.Resolver == nil {
		return &Resolver{}
	}
	return s.Resolver
}

// ProviderFor returns the provider name and provider for an identifier.
func (s *Solver) ProviderFor(domain string) (string, Provider, error) {
	return s.providerVia("", domain)
}

// providerVia is ProviderFor, but through the provider named route when a
// certificate names its own (certfleet.Challenge.DNSProvider).
func (s *Solver) providerVia(route, domain string) (string, Provider, error) {
	if route != "" {
		p, ok := s.Providers[route]
		if !ok {
			return "", nil, certfleet.Errorf(certfleet.EINVALID, "dns-01 provider %q (for %q) is not defined; add [dns01.providers.%s]", route, domain, route)
		}
		return route, p, nil
	}
	d := strings.TrimPrefix(strings.ToLower(strings.TrimSuffix(domain, ".")), "*.")
	name := s.Routes[d]
	if name == "" && s.Route != nil {
		name = s.Route(d)
	}
	if name == "" {
		name = s.DefaultProvider
	}
	if name == "" {
		return "", nil, certfleet.Errorf(certfleet.EINVALID, "no dns-01 provider is configured for %q; set dns_provider on its certificate or in [defaults]", d)
	}
	p, ok := s.Providers[name]
	if !ok {
		return "", nil, certfleet.Errorf(certfleet.EINVALID, "dns-01 provider %q (for %q) is not defined; add [dns01.providers.%s]", name, d, name)
	}
	return name, p, nil
}

// Locate resolves where the dns-01 record of domain goes: it follows the
// CNAME chain from _acme-challenge.<domain> and finds the zone of its end.
// The record's Value is left empty.
func (s *Solver) Locate(ctx context.Context, domain string) (Record, []string, error) {
	d := strings.TrimPrefix(strings.ToLower(strings.TrimSuffix(domain, ".")), "*.")
	r := s.resolver()
	name := RecordName(d)
	target, chain, err := r.FollowCNAME(ctx, name)
	if err != nil {
		return Record{}, chain, fmt.Errorf("follow CNAME delegation of %s: %w", name, err)
	}
	zone, _, err := r.FindZone(ctx, target)
	if err != nil {
		if len(chain) > 1 {
			return Record{}, chain, fmt.Errorf("CNAME delegation %s points into no zone (dangling target?): %w", strings.Join(chain, " → "), err)
		}
		return Record{}, chain, err
	}
	return Record{Domain: d, FQDN: target, Zone: zone}, chain, nil
}

// Present adds the challenge's TXT record through its provider and starts
// tracking its propagation. It does not wait: see Wait.
func (s *Solver) Present(ctx context.Context, chal certfleet.Challenge) error {
	s.init()
	s.cleanupJournalOnce(ctx)
	pname, p, err := s.providerVia(chal.DNSProvider, chal.Identifier.Value)
	if err != nil {
		return err
	}
	rec, _, err := s.Locate(ctx, chal.Identifier.Value)
	if err != nil {
		return err
	}
	rec.Value = RecordValue(chal.KeyAuthorization)
	rec.KeyAuthorization = chal.KeyAuthorization
	servers, err := s.resolver().Authoritative(ctx, rec.Zone)
	if err != nil {
		return fmt.Errorf("nameservers of %s: %w", rec.Zone, err)
	}
	s.mu.Lock()
	s.presented[chal.URL] = presented{provider: pname, rec: rec}
	s.mu.Unlock()
	if s.jr != nil {
		if err := s.jr.add(chal.URL, pname, rec); err != nil {
			return err
		}
	}
	if err := p.Present(ctx, rec); err != nil {
		return fmt.Errorf("dns-01 provider %s: add TXT %s in zone %s: %w", pname, rec.FQDN, rec.Zone, err)
	}
	s.Logger.Debug("dns-01 record presented", certfleet.LogIdentifier, chal.Identifier.Value,
		"record", rec.FQDN, "zone", rec.Zone, "provider", pname)
	s.tr.add(chal.URL, rec, servers)
	return nil
}

// Wait blocks until the challenge's record is served by every
// authoritative nameserver of its zone, the propagation timeout passes (an
// error naming the servers that lack it), or ctx ends.
func (s *Solver) Wait(ctx context.Context, chal certfleet.Challenge) error {
	s.init()
	return s.tr.wait(ctx, chal.URL)
}

// CleanUp removes the challenge's TXT record. It is idempotent and works
// without an earlier Present in this process (after a restart): it then
// locates the record again.
func (s *Solver) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	s.init()
	s.tr.remove(chal.URL)
	s.mu.Lock()
	pr, ok := s.presented[chal.URL]
	delete(s.presented, chal.URL)
	s.mu.Unlock()
	if !ok {
		pname, _, err := s.ProviderFor(chal.Identifier.Value)
		if err != nil {
			return err
		}
		rec, _, err := s.Locate(ctx, chal.Identifier.Value)
		if err != nil {
			return fmt.Errorf("clean up dns-01 record for %q: %w", chal.Identifier.Value, err)
		}
		rec.Value = RecordValue(chal.KeyAuthorization)
		rec.KeyAuthorization = chal.KeyAuthorization
		pr = presented{provider: pname, rec: rec}
	}
	if err := s.cleanup(ctx, pr.provider, pr.rec); err != nil {
		return err
	}
	if s.jr != nil {
		return s.jr.remove(chal.URL)
	}
	return nil
}

func (s *Solver) cleanup(ctx context.Context, pname string, rec Record) error {
	p, ok := s.Providers[pname]
	if !ok {
		return fmt.Errorf("clean up TXT %s: provider %q is no longer configured; remove the record by hand", rec.FQDN, pname)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	if err := p.CleanUp(cctx, rec); err != nil {
		return fmt.Errorf("dns-01 provider %s: remove TXT %s in zone %s: %w", pname, rec.FQDN, rec.Zone, err)
	}
	return nil
}

// preflightTTL is how long a successful preflight of a provider and zone
// is trusted: credentials rarely change, and a renewal wave should not
// re-check them for every certificate.
const preflightTTL = time.Hour

// Preflight checks, before an order is placed, that every DNS identifier
// of the list can be solved: its record is located (CNAME delegation and
// zone) and, when the provider is a Checker, the provider may write there
// (for RFC 2136: the TSIG key is accepted). A failure here costs no order
// at the CA. Successful checks are remembered for an hour per provider and
// zone.
func (s *Solver) Preflight(ctx context.Context, ids []certfleet.Identifier) error {
	return s.PreflightVia(ctx, "", ids)
}

// PreflightVia is Preflight through the provider named provider, for a
// certificate that names its own ("" routes by identifier).
func (s *Solver) PreflightVia(ctx context.Context, provider string, ids []certfleet.Identifier) error {
	s.init()
	var errs []error
	for _, id := range ids {
		if id.Type != certfleet.IdentifierDNS {
			continue
		}
		pname, p, err := s.providerVia(provider, id.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rec, _, err := s.Locate(ctx, id.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.Value, err))
			continue
		}
		c, ok := p.(Checker)
		if !ok {
			continue
		}
		key := pname + " " + rec.Zone
		s.mu.Lock()
		last, ok := s.preflight[key]
		s.mu.Unlock()
		if ok && time.Since(last) < preflightTTL {
			continue
		}
		rec.Value = "certfleet-preflight"
		if err := c.Check(ctx, rec); err != nil {
			errs = append(errs, fmt.Errorf("%s: dns-01 provider %s cannot update zone %s: %w", id.Value, pname, rec.Zone, err))
			continue
		}
		s.mu.Lock()
		s.preflight[key] = time.Now()
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// ErrPropagation is wrapped by Wait's error when a record did not reach
// every authoritative server in time.
var ErrPropagation = errors.New("dns-01 record not served by every authoritative nameserver")

// PreflightNoter is an optional interface of a Provider whose Checker is
// not a cheap, read-only check (it writes a test value, say):
// PreflightNote says so, for certfleet check.
type PreflightNoter interface {
	PreflightNote() string
}

// PreflightNote says how the credentials of p are checked before an
// order, for certfleet check: a PreflightNoter's note, or whether p has a
// Checker at all.
func PreflightNote(p Provider) string {
	if n, ok := p.(PreflightNoter); ok {
		return n.PreflightNote()
	}
	if _, ok := p.(Checker); ok {
		return "credentials checked before every order"
	}
	return "this provider type has no credential check: before an order only the zone and CNAME delegation are checked, so a bad credential shows when the record is written"
}
