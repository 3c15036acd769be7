// Package preflight checks, without contacting the CA, that every name of a
// configuration can be validated: for dns-01, that the zone is found, that
// a CNAME at _acme-challenge leads into a zone the provider can update, that
// a test TXT record can be added, is served by every authoritative
// nameserver and can be removed, and that CAA records permit the
// certificate's CA (RFC 8659); for http-01, that a test token presented in
// the store is fetched back through the public name. It is what
// certfleet check runs.
//
// It places no order and builds no solver (a dns-persist-01 check may
// register the account at the CA, to learn its URL): the caller hands it the dns-01
// and http-01 solvers (the daemon package builds them from the
// configuration), so the check exercises exactly what issuing would. The
// check the scheduler runs before each dns-01 order is the solver's own
// (dns01.Solver.Preflight).
package preflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/selftest"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/http01"
)

// Checker checks the names of a configuration.
type Checker struct {
	// Config names the certificates and the CAs' CAA identities.
	Config *config.Config
	// Out receives one line per name: "ok" or "FAIL", the name, the
	// challenge and what was found.
	Out io.Writer
	// DNS is the dns-01 solver; required when a certificate uses dns-01.
	DNS *dns01.Solver
	// HTTP01 presents the http-01 test tokens in the store the responders
	// answer from; nil skips the http-01 names.
	HTTP01 *http01.Solver
	// Persist returns what a dns-persist-01 record must name for an
	// account (daemon.PersistLookup); nil skips the dns-persist-01 names.
	// Their records are read through [self_test] resolvers.
	Persist func(ctx context.Context, account string) (certfleet.PersistIdentity, error)
}

// checkTimeout bounds the checks of one name.
const checkTimeout = 3 * time.Minute

// Run checks every name once per challenge and returns how many checks
// failed.
func (c *Checker) Run(ctx context.Context) (failed int) {
	// The outputs first: what serve and issue refuse to start with
	// (owners, groups, paths below a regular file; docs/deploy-state.md).
	var cerr *config.Error
	if err := c.Config.CheckHost(); errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			failed++
			fmt.Fprintf(c.Out, "FAIL  %-30s output: %s\n", p.Field, p)
		}
	}
	seen := map[string]bool{}
	for _, cert := range c.Config.Certificates {
		for _, id := range cert.Spec.Identifiers {
			key := string(cert.Spec.Challenge) + " " + id.Value
			if seen[key] {
				continue
			}
			seen[key] = true
			var verdict string
			var err error
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			switch cert.Spec.Challenge {
			case certfleet.ChallengeDNS01:
				verdict, err = c.checkDNS(cctx, cert, id)
			case certfleet.ChallengeHTTP01:
				if c.HTTP01 == nil {
					cancel()
					continue
				}
				verdict, err = c.checkHTTP(cctx, id)
			case certfleet.ChallengeDNSPersist01:
				if c.Persist == nil {
					cancel()
					continue
				}
				verdict, err = c.checkPersist(cctx, cert, id)
			default:
				cancel()
				continue
			}
			cancel()
			if err != nil {
				failed++
				fmt.Fprintf(c.Out, "FAIL  %-30s %s: %v\n", id.Value, cert.Spec.Challenge, err)
				continue
			}
			fmt.Fprintf(c.Out, "ok    %-30s %s: %s\n", id.Value, cert.Spec.Challenge, verdict)
		}
	}
	return failed
}

func (c *Checker) checkDNS(ctx context.Context, cert config.Certificate, id certfleet.Identifier) (string, error) {
	pname, prov, err := c.DNS.ProviderFor(id.Value)
	if err != nil {
		return "", err
	}
	rec, chain, err := c.DNS.Locate(ctx, id.Value)
	if err != nil {
		return "", err
	}
	var notes []string
	if len(chain) > 1 {
		notes = append(notes, "CNAME delegation "+strings.Join(chain, " → "))
	}
	r := c.DNS.Resolver
	servers, err := r.Authoritative(ctx, rec.Zone)
	if err != nil {
		return "", err
	}
	for _, ns := range servers {
		if err := askSOA(ctx, ns, rec.Zone, r.Timeout); err != nil {
			return "", err
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	rec.KeyAuthorization = "certfleet-check-" + hex.EncodeToString(b)
	rec.Value = dns01.RecordValue(rec.KeyAuthorization)
	if err := prov.Present(ctx, rec); err != nil {
		return "", fmt.Errorf("provider %s cannot add a test TXT record at %s: %w", pname, rec.FQDN, err)
	}
	seenErr := waitEverywhere(ctx, servers, rec, c.Config.DNS01.PropagationTimeout)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dns01.CleanupTimeout)
	defer cancel()
	if err := prov.CleanUp(cctx, rec); err != nil {
		return "", fmt.Errorf("provider %s added a test TXT record at %s but cannot remove it: %w", pname, rec.FQDN, err)
	}
	if seenErr != nil {
		return "", seenErr
	}
	notes = append(notes, fmt.Sprintf("zone %s, test record added via %s, served by all %d nameserver addresses, removed", rec.Zone, pname, len(servers)))
	notes = append(notes, dns01.PreflightNote(prov))
	caa, err := checkCAA(ctx, r, id, c.Config.CAA(cert.Spec.Account))
	if err != nil {
		return "", err
	}
	notes = append(notes, caa)
	return strings.Join(notes, "; "), nil
}

// askSOA checks that ns answers authoritatively for zone.
func askSOA(ctx context.Context, ns dns01.Nameserver, zone string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = dns01.DefaultQueryTimeout
	}
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeSOA)
	m.RecursionDesired = false
	resp, err := dns01.Exchange(ctx, m, ns.Addr, timeout)
	if err != nil {
		return fmt.Errorf("nameserver %s (%s) of %s does not answer: %w", ns.Name, ns.Addr, zone, err)
	}
	if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
		return fmt.Errorf("nameserver %s (%s) is not authoritative for %s (rcode %s, aa=%v): fix the zone's NS records",
			ns.Name, ns.Addr, zone, dns.RcodeToString[resp.Rcode], resp.Authoritative)
	}
	return nil
}

func waitEverywhere(ctx context.Context, servers []dns01.Nameserver, rec dns01.Record, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = dns01.DefaultPropagationTimeout
	}
	deadline := time.Now().Add(timeout)
	pending := slices.Clone(servers)
	delay := 100 * time.Millisecond
	for {
		var still []dns01.Nameserver
		for _, ns := range pending {
			vals, err := dns01.QueryTXT(ctx, ns.Addr, rec.FQDN, dns01.DefaultQueryTimeout)
			if err != nil || !slices.Contains(vals, rec.Value) {
				still = append(still, ns)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			names := make([]string, len(pending))
			for i, ns := range pending {
				names[i] = ns.Name + " (" + ns.Addr + ")"
			}
			return fmt.Errorf("test TXT record at %s not served by %s after %s", rec.FQDN, strings.Join(names, ", "), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 4*time.Second)
	}
}

// checkCAA applies RFC 8659 §3: the relevant CAA RRset is the one found
// first climbing from the name towards the root; if there is none, any CA
// may issue. Wildcards are governed by issuewild when present (§4.3).
func checkCAA(ctx context.Context, r *dns01.Resolver, id certfleet.Identifier, identities []string) (string, error) {
	wildcard := id.IsWildcard()
	name := dns.CanonicalName(strings.TrimPrefix(id.Value, "*."))
	for first := true; ; first = false {
		resp, err := r.Query(ctx, name, dns.TypeCAA)
		if err != nil && !first {
			// An authoritative-only resolver (split-horizon set-ups,
			// tests) refuses names above its zones; a CA's recursive
			// resolver would not. Say so rather than fail.
			return fmt.Sprintf("no CAA records up to %s; above it not checked (%v)", name, err), nil
		}
		if err != nil {
			return "", fmt.Errorf("CAA lookup: %w", err)
		}
		var issue, issuewild []string
		for _, rr := range resp.Answer {
			caa, ok := rr.(*dns.CAA)
			if !ok {
				continue
			}
			v := strings.ToLower(strings.TrimSpace(strings.SplitN(caa.Value, ";", 2)[0]))
			switch strings.ToLower(caa.Tag) {
			case "issue":
				issue = append(issue, v)
			case "issuewild":
				issuewild = append(issuewild, v)
			}
		}
		if len(issue) > 0 || len(issuewild) > 0 {
			set, tag := issue, "issue"
			if wildcard && len(issuewild) > 0 {
				set, tag = issuewild, "issuewild"
			}
			if len(identities) == 0 {
				return "", fmt.Errorf("CAA records at %s name %q, and the CA's CAA identity is unknown: set caa_identities for its account", name, set)
			}
			for _, v := range set {
				if slices.Contains(identities, v) {
					return fmt.Sprintf("CAA %s at %s permits %s", tag, name, v), nil
				}
			}
			return "", fmt.Errorf("CAA %s records at %s permit only %q, not this certificate's CA (%s): add %s 0 %s %q",
				tag, name, set, strings.Join(identities, ", "), name, tag, identities[0])
		}
		if name == "." {
			return "no CAA records: any CA may issue", nil
		}
		i, end := dns.NextLabel(name, 0)
		if end {
			name = "."
		} else {
			name = name[i:]
		}
	}
}

// checkHTTP presents a test http-01 token in the store and fetches it
// through the public name, as the CA would (RFC 8555 §8.3).
func (c *Checker) checkHTTP(ctx context.Context, id certfleet.Identifier) (string, error) {
	b := make([]byte, 16)
	rand.Read(b)
	token := "certfleet-check-" + hex.EncodeToString(b)
	chal := certfleet.Challenge{Type: certfleet.ChallengeHTTP01, Identifier: id, Token: token, KeyAuthorization: token + ".check"}
	if err := c.HTTP01.Present(ctx, chal); err != nil {
		return "", err
	}
	defer c.HTTP01.CleanUp(context.WithoutCancel(ctx), chal)
	host := id.Value
	if id.Type == certfleet.IdentifierIP && strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	url := "http://" + host + "/.well-known/acme-challenge/" + token
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w (is certfleet serve running and port 80 forwarded to its responder?)", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != chal.KeyAuthorization {
		return "", errors.New("fetch " + url + ": " + resp.Status + ": the answer is not the test token's key authorization; is port 80 of this name forwarded to certfleet's responder?")
	}
	return "responder reachable through " + url, nil
}

// NeedsStore reports whether checking cfg needs its store: for the
// http-01 self-test (with http01; its tokens are answered from the store),
// for "store:NAME" secrets (a TSIG key), for acme-dns registrations, or for
// the account URLs dns-persist-01 records name.
func NeedsStore(cfg *config.Config, http01 bool) bool {
	return http01 && cfg.Uses(certfleet.ChallengeHTTP01) || cfg.HasSecretRefs() || usesACMEDNS(cfg) ||
		cfg.Uses(certfleet.ChallengeDNSPersist01)
}

// checkPersist checks the dns-persist-01 record of id (draft-ietf-acme-
// dns-persist §4.1) as the self-test before an order does, and on failure
// says which record to publish.
func (c *Checker) checkPersist(ctx context.Context, cert config.Certificate, id certfleet.Identifier) (string, error) {
	t := &selftest.Tester{Resolver: &dns01.Resolver{Nameservers: c.Config.SelfTest.Resolvers}, Persist: c.Persist,
		PersistWarning: c.Config.SelfTest.PersistWarning}
	res, err := t.SelfTest(ctx, cert.Spec, []certfleet.Identifier{id})
	if err != nil {
		return "", err
	}
	if !res[0].OK() {
		return "", errors.New(res[0].Reason)
	}
	return "record " + certfleet.PersistRecordName(id.Value) + " authorizes account " + cert.Spec.AccountName(), nil
}

// usesACMEDNS reports whether a certificate may use an acme-dns provider.
func usesACMEDNS(cfg *config.Config) bool {
	for _, p := range cfg.DNS01.Providers {
		if p.Type == config.DNSProviderACMEDNS {
			return cfg.Uses(certfleet.ChallengeDNS01)
		}
	}
	return false
}
