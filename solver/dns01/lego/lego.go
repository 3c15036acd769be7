// Package lego is a dns01.Provider for DNS hosting services through the
// provider packages of lego (github.com/go-acme/lego/v5), one per service;
// the services certfleet offers are the builders in providers.go, each
// importing only its own lego package. New builds one from the keys of a
// [dns01.providers.NAME] table (config.DNSProviderKeys); it fills lego's
// Config struct from them and never lets lego read its environment
// variables.
//
// lego's providers are used only to add and remove TXT records. Everything
// else stays dns01.Solver's: CNAME delegation and the zone are resolved
// once, by certfleet, and handed to lego through a loopback oracle (see
// oracle.go); propagation is checked at every authoritative server;
// records are journaled and cleaned up after a crash. The adapter adds
// what lego's providers lack for that:
//
//   - calls for one name (one zone for providers that rewrite the whole
//     zone) are serialized, because most of lego's providers read the TXT
//     values, add one, and write the set back: a wildcard and its apex
//     present two values under one name at once and must both survive;
//   - a provider whose CleanUp removes every value of a name (traits
//     wholeName) is asked to clean up only when the last value this process presented
//     there goes;
//   - CleanUp of a value that is not there is not an error: when lego's
//     call fails, the zone's authoritative servers are asked, and if none
//     serves the value, there is nothing to remove;
//   - several of lego's providers can only remove records they created in
//     the same process, because they keep the record ids in memory (traits
//     forgets, per builder). A record such a provider
//     left behind in a crash cannot be removed through lego: CleanUp then
//     fails with a message that names the record to remove by hand, for as
//     long as it is still served (the journal retries at every start).
//
// There is no read-only credential check through lego, so Check, run
// before an order is placed, adds and removes a test TXT value.
//
// It does not talk to the CA and does not wait for propagation.
package lego

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/certfleet/certfleet/solver/dns01"
)

// Settings are what New builds a provider from.
type Settings struct {
	// Name is the provider's name in the configuration, for messages.
	Name string
	// Type is the provider type (a config.DNSProvider... constant that
	// config.IsLegoDNSProvider accepts).
	Type string
	// Keys are the table's settings by key name, as config.DNSProvider.Keys
	// holds them, with secrets resolved.
	Keys map[string]string
	// Resolver asks the authoritative servers whether a value is still
	// served (CleanUp). Nil uses the system's resolvers.
	Resolver *dns01.Resolver
	// Logger receives lego's own log lines (once per process: lego's
	// logger is global); nil discards them.
	Logger *slog.Logger
	// HTTPClient, when set, makes every API request (tests point it at a
	// local server). Default: a client with the timeout key's bound.
	HTTPClient *http.Client
}

// traits are how a lego provider's Present and CleanUp behave, beyond
// their signature; see the package doc.
type traits struct {
	// forgets: CleanUp only removes records created by this process.
	forgets bool
	// wholeName: CleanUp removes every TXT value of the name.
	wholeName bool
	// zoneWide: each change rewrites the whole zone; serialize per zone.
	zoneWide bool
}

// Provider is a lego provider as a dns01.Provider and dns01.Checker. Safe
// for concurrent use.
type Provider struct {
	typ    string
	name   string
	lp     challenge.Provider
	tr     traits
	res    *dns01.Resolver
	oracle *oracle

	mu    sync.Mutex           // guards locks, live
	locks map[string]*nameLock // by FQDN, or zone when zoneWide
	live  map[string][]string  // FQDN → values presented here and not removed
}

type nameLock struct {
	mu sync.Mutex
	n  int // holders and waiters
}

var (
	_ dns01.Provider       = (*Provider)(nil)
	_ dns01.Checker        = (*Provider)(nil)
	_ dns01.PreflightNoter = (*Provider)(nil)
)

// New builds the provider s describes. It fails on a type it does not know
// and on settings lego refuses; it does not contact the provider's API
// (lego's constructors for the listed types do not either).
func New(s Settings) (*Provider, error) {
	b, ok := builders[s.Type]
	if !ok {
		return nil, fmt.Errorf("dns provider type %q is not one written through lego", s.Type)
	}
	o, err := sharedOracle(s.Logger)
	if err != nil {
		return nil, err
	}
	k := keys{m: s.Keys, hc: s.HTTPClient}
	lp, tr, err := b(k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Type, err)
	}
	name := s.Name
	if name == "" {
		name = s.Type
	}
	return &Provider{typ: s.Type, name: name, lp: lp, tr: tr, res: s.Resolver, oracle: o,
		locks: map[string]*nameLock{}, live: map[string][]string{}}, nil
}

// lock serializes the calls for rec's name (its zone for zoneWide
// providers) and makes the oracle answer for rec; unlock undoes both.
func (p *Provider) lock(rec dns01.Record) (unlock func(), err error) {
	key := rec.FQDN
	if p.tr.zoneWide {
		key = rec.Zone
	}
	p.mu.Lock()
	l := p.locks[key]
	if l == nil {
		l = &nameLock{}
		p.locks[key] = l
	}
	l.n++
	p.mu.Unlock()
	l.mu.Lock()
	release, err := p.oracle.hold(challengeName(rec.Domain), rec.FQDN, rec.Zone)
	done := func() {
		l.mu.Unlock()
		p.mu.Lock()
		if l.n--; l.n == 0 {
			delete(p.locks, key)
		}
		p.mu.Unlock()
	}
	if err != nil {
		done()
		return nil, err
	}
	return func() { release(); done() }, nil
}

// String names the provider without its settings (they hold secrets).
func (p *Provider) String() string {
	return "dns provider " + p.name + " (" + p.typ + ", through lego)"
}

// GoString is String, so that %#v cannot print a secret either.
func (p *Provider) GoString() string { return p.String() }

// token is what lego's providers that remember record ids key them by:
// one per record value.
func token(rec dns01.Record) string { return rec.FQDN + " " + rec.Value }

func needKeyAuth(rec dns01.Record) error {
	if rec.KeyAuthorization == "" {
		return fmt.Errorf("lego computes the TXT value itself and needs the key authorization of %s, which this record lacks (a journal entry from before this provider was used? remove TXT %s %q by hand)", rec.FQDN, rec.FQDN, rec.Value)
	}
	if dns01.RecordValue(rec.KeyAuthorization) != rec.Value {
		return fmt.Errorf("the TXT value of %s is not the digest of its key authorization", rec.FQDN)
	}
	return nil
}

// Present adds rec.Value at rec.FQDN through lego, keeping the other
// values there.
func (p *Provider) Present(ctx context.Context, rec dns01.Record) error {
	if err := needKeyAuth(rec); err != nil {
		return err
	}
	unlock, err := p.lock(rec)
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.lp.Present(ctx, rec.Domain, token(rec), rec.KeyAuthorization); err != nil {
		return err
	}
	p.mu.Lock()
	if !slices.Contains(p.live[rec.FQDN], rec.Value) {
		p.live[rec.FQDN] = append(p.live[rec.FQDN], rec.Value)
	}
	p.mu.Unlock()
	return nil
}

// CleanUp removes rec.Value from rec.FQDN through lego; see the package
// doc for the cases lego cannot handle alone.
func (p *Provider) CleanUp(ctx context.Context, rec dns01.Record) error {
	if err := needKeyAuth(rec); err != nil {
		return err
	}
	unlock, err := p.lock(rec)
	if err != nil {
		return err
	}
	defer unlock()
	p.mu.Lock()
	values := p.live[rec.FQDN]
	ours := slices.Contains(values, rec.Value)
	others := len(values) - btoi(ours)
	p.mu.Unlock()

	if !ours && p.tr.forgets {
		// Not presented by this process (a restart, or a Present that
		// failed): lego has no id for it and could not remove it.
		served, err := p.served(ctx, rec)
		if err != nil {
			return fmt.Errorf("%s left from an earlier run may still be there, and lego's %s provider removes only records it created in the same run; checking the nameservers failed: %w", rec.FQDN, p.typ, err)
		}
		if served {
			return fmt.Errorf("TXT %s %q is left from an earlier run, and lego's %s provider removes only records it created in the same run: remove it by hand in zone %s (certfleet stops asking once it is gone)", rec.FQDN, rec.Value, p.typ, rec.Zone)
		}
		return nil
	}
	if p.tr.wholeName && others > 0 {
		// lego would remove the other values too, which are still in
		// use; the last one's cleanup removes the name, this value with
		// it.
		p.forget(rec)
		return nil
	}
	if err := p.lp.CleanUp(ctx, rec.Domain, token(rec), rec.KeyAuthorization); err != nil {
		// A record of an earlier run, or of a failed Present, may simply
		// not be there. One presented here may not have propagated yet,
		// so its absence proves nothing.
		if !ours {
			if served, qerr := p.served(ctx, rec); qerr == nil && !served {
				return nil
			}
		}
		return err
	}
	p.forget(rec)
	if p.tr.wholeName {
		p.mu.Lock()
		delete(p.live, rec.FQDN)
		p.mu.Unlock()
	}
	return nil
}

func (p *Provider) forget(rec dns01.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	values := slices.DeleteFunc(p.live[rec.FQDN], func(v string) bool { return v == rec.Value })
	if len(values) == 0 {
		delete(p.live, rec.FQDN)
	} else {
		p.live[rec.FQDN] = values
	}
}

// served reports whether any authoritative server of rec.Zone serves
// rec.Value at rec.FQDN. It fails only when no server answers.
func (p *Provider) served(ctx context.Context, rec dns01.Record) (bool, error) {
	r := p.res
	if r == nil {
		r = &dns01.Resolver{}
	}
	servers, err := r.Authoritative(ctx, rec.Zone)
	if err != nil {
		return false, err
	}
	var errs []error
	for _, ns := range servers {
		values, err := dns01.QueryTXT(ctx, ns.Addr, rec.FQDN, dns01.DefaultQueryTimeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.Contains(values, rec.Value) {
			return true, nil
		}
	}
	if len(errs) == len(servers) {
		return false, errors.Join(errs...)
	}
	return false, nil
}

// Check adds a test TXT value at rec.FQDN and removes it: lego has no
// read-only way to prove that the credentials may write the zone.
func (p *Provider) Check(ctx context.Context, rec dns01.Record) error {
	b := make([]byte, 16)
	rand.Read(b)
	rec.KeyAuthorization = "certfleet-preflight-" + hex.EncodeToString(b)
	rec.Value = dns01.RecordValue(rec.KeyAuthorization)
	if err := p.Present(ctx, rec); err != nil {
		return fmt.Errorf("add a test TXT record at %s (are the credentials right, and may they edit zone %s?): %w", rec.FQDN, rec.Zone, err)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dns01.CleanupTimeout)
	defer cancel()
	if err := p.CleanUp(cctx, rec); err != nil {
		return fmt.Errorf("remove the test TXT record at %s: %w", rec.FQDN, err)
	}
	return nil
}

// PreflightNote says that the preflight writes.
func (p *Provider) PreflightNote() string {
	return "lego's " + p.typ + " provider has no read-only credential check: before an order, certfleet adds and removes a test TXT value (at most once an hour per zone)"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
