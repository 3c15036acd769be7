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
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/selftest"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/solver/webroot"
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
	// Warned is how many WARN lines the last Run printed: what it could
	// not fully check.
	Warned int
}

// checkTimeout bounds the checks of one name.
const checkTimeout = 3 * time.Minute

// Run checks every name once per challenge and returns how many checks
// failed. Every certificate and challenge gets a line (issue 15, finding
// 5): "ok", "FAIL", or "WARN" for what could not be fully checked (a CAA
// climb cut short, a challenge check leaves to the scheduler's self-test);
// warnings do not count as failures. Warned is set to their number.
func (c *Checker) Run(ctx context.Context) (failed int) {
	c.Warned = 0
	// The outputs first: what serve and issue refuse to start with
	// (owners, groups, paths below a regular file; docs/deploy-state.md).
	var cerr *config.Error
	if err := c.Config.CheckHost(); errors.As(err, &cerr) {
		for _, p := range cerr.Problems {
			failed++
			fmt.Fprintf(c.Out, "FAIL  %-30s output: %s\n", p.Field, p)
		}
	}
	if c.HTTP01 != nil && c.Config.Uses(certfleet.ChallengeHTTP01) {
		stop := c.startResponder(ctx)
		defer stop()
	}
	seen := map[string]bool{}
	for _, cert := range c.Config.Certificates {
		for _, id := range cert.Spec.Identifiers {
			key := string(cert.Spec.Challenge) + " " + cert.Webroot + " " + id.Value
			if seen[key] {
				continue
			}
			seen[key] = true
			var verdict, warn string
			var err error
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			switch cert.Spec.Challenge {
			case certfleet.ChallengeDNS01:
				verdict, warn, err = c.checkDNS(cctx, cert, id)
			case certfleet.ChallengeHTTP01:
				if c.HTTP01 == nil {
					warn = "not checked (-no-http01, or no store for the probe token)"
					break
				}
				verdict, err = c.probeHTTP(cctx, c.HTTP01.Store, cert, id, "certfleet's http-01 responder")
			case certfleet.ChallengeWebroot:
				verdict, err = c.checkWebroot(cctx, cert, id)
			case certfleet.ChallengeDNSPersist01:
				if c.Persist == nil {
					cancel()
					continue
				}
				verdict, err = c.checkPersist(cctx, cert, id)
			default:
				warn = "not checked by certfleet check: the self-test before each order probes it (docs/readiness.md)"
			}
			cancel()
			switch {
			case err != nil:
				failed++
				fmt.Fprintf(c.Out, "FAIL  %-30s %s: %v\n", id.Value, cert.Spec.Challenge, err)
			case warn != "":
				c.Warned++
				if verdict != "" {
					warn = verdict + "; " + warn
				}
				fmt.Fprintf(c.Out, "WARN  %-30s %s: %s\n", id.Value, cert.Spec.Challenge, warn)
			default:
				fmt.Fprintf(c.Out, "ok    %-30s %s: %s\n", id.Value, cert.Spec.Challenge, verdict)
			}
		}
	}
	return failed
}

func (c *Checker) checkDNS(ctx context.Context, cert config.Certificate, id certfleet.Identifier) (string, string, error) {
	pname, prov, err := c.DNS.ProviderFor(id.Value)
	if err != nil {
		return "", "", err
	}
	rec, chain, err := c.DNS.Locate(ctx, id.Value)
	if err != nil {
		return "", "", err
	}
	var notes []string
	if len(chain) > 1 {
		notes = append(notes, "CNAME delegation "+strings.Join(chain, " → "))
	}
	r := c.DNS.Resolver
	servers, err := r.Authoritative(ctx, rec.Zone)
	if err != nil {
		return "", "", err
	}
	for _, ns := range servers {
		if err := askSOA(ctx, ns, rec.Zone, r.Timeout); err != nil {
			return "", "", err
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	rec.KeyAuthorization = "certfleet-check-" + hex.EncodeToString(b)
	rec.Value = dns01.RecordValue(rec.KeyAuthorization)
	if err := prov.Present(ctx, rec); err != nil {
		return "", "", fmt.Errorf("provider %s cannot add a test TXT record at %s: %w", pname, rec.FQDN, err)
	}
	seenErr := waitEverywhere(ctx, servers, rec, c.Config.DNS01.PropagationTimeout)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dns01.CleanupTimeout)
	defer cancel()
	if err := prov.CleanUp(cctx, rec); err != nil {
		return "", "", fmt.Errorf("provider %s added a test TXT record at %s but cannot remove it: %w", pname, rec.FQDN, err)
	}
	if seenErr != nil {
		return "", "", seenErr
	}
	notes = append(notes, fmt.Sprintf("zone %s, test record added via %s, served by all %d nameserver addresses, removed", rec.Zone, pname, len(servers)))
	notes = append(notes, dns01.PreflightNote(prov))
	caa, warn, err := checkCAA(ctx, r, id, c.Config.CAA(cert.Spec.Account))
	if err != nil {
		return "", "", err
	}
	if caa != "" {
		notes = append(notes, caa)
	}
	return strings.Join(notes, "; "), warn, nil
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
//
// A lookup that fails above the name's own zone leaves the rest of the
// climb unchecked: that is not "ok" (issue 15, finding 5), so it comes
// back as warn, saying what could not be checked; verdict is then "".
func checkCAA(ctx context.Context, r *dns01.Resolver, id certfleet.Identifier, identities []string) (verdict, warn string, err error) {
	wildcard := id.IsWildcard()
	name := dns.CanonicalName(strings.TrimPrefix(id.Value, "*."))
	prev := name // the last name whose lookup answered
	for first := true; ; first = false {
		resp, err := r.Query(ctx, name, dns.TypeCAA)
		if err != nil && !first {
			// An authoritative-only resolver (split-horizon set-ups,
			// tests) refuses names above its zones; a CA's recursive
			// resolver would not. Say so rather than fail.
			return "", fmt.Sprintf("CAA not fully checked: no CAA records up to %s, and the lookup of %s failed (%v), so a CAA record above it that forbids this CA would not be seen; "+
				"check with a recursive resolver ([self_test] resolvers) or look at the parent zones' CAA records", prev, name, err), nil
		}
		if err != nil {
			return "", "", fmt.Errorf("CAA lookup: %w", err)
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
				return "", "", fmt.Errorf("CAA records at %s name %q, and the CA's CAA identity is unknown: set caa_identities for its account", name, set)
			}
			for _, v := range set {
				if slices.Contains(identities, v) {
					return fmt.Sprintf("CAA %s at %s permits %s", tag, name, v), "", nil
				}
			}
			return "", "", fmt.Errorf("CAA %s records at %s permit only %q, not this certificate's CA (%s): add %s 0 %s %q",
				tag, name, set, strings.Join(identities, ", "), name, tag, identities[0])
		}
		if name == "." {
			return "no CAA records: any CA may issue", "", nil
		}
		prev = name
		i, end := dns.NextLabel(name, 0)
		if end {
			name = "."
		} else {
			name = name[i:]
		}
	}
}

// probeHTTP fetches a probe token through the public name as the CA
// would (RFC 8555 §8.3), with the scheduler's own self-test
// (selftest.Tester: the configured resolvers, port 80 or [self_test]
// http_port, redirects as a CA follows them); store is where the probe
// token goes, and what answers it is named by who.
func (c *Checker) probeHTTP(ctx context.Context, store certfleet.ChallengeStore, cert config.Certificate, id certfleet.Identifier, who string) (string, error) {
	st := c.Config.SelfTest
	t := &selftest.Tester{Store: store, Resolver: &dns01.Resolver{Nameservers: st.Resolvers}, HTTPPort: st.HTTPPort, TLSPort: st.TLSPort, Timeout: st.Timeout}
	spec := cert.Spec
	spec.Challenge = certfleet.ChallengeHTTP01
	res, err := t.SelfTest(ctx, spec, []certfleet.Identifier{id})
	if err != nil {
		return "", err
	}
	if !res[0].OK() {
		return "", errors.New(res[0].Reason)
	}
	host := id.Value
	if id.Type == certfleet.IdentifierIP && strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "a probe token was fetched from " + who + " through http://" + host + http01.PathPrefix + ", as the CA fetches it", nil
}

// checkWebroot writes a probe file into the certificate's web root and
// fetches it through the public name, as the CA would: the web server
// that serves the web root must answer it (issue 15, finding 5: webroot
// names were not checked at all).
func (c *Checker) checkWebroot(ctx context.Context, cert config.Certificate, id certfleet.Identifier) (string, error) {
	if cert.Webroot == "" {
		return "", fmt.Errorf("certificate %q has no webroot to write the probe into", cert.Spec.Name)
	}
	ws := &webrootStore{s: &webroot.Solver{Dir: cert.Webroot}, id: id}
	return c.probeHTTP(ctx, ws, cert, id, "the web server serving "+cert.Webroot)
}

// webrootStore is a certfleet.ChallengeStore whose tokens are files in a
// web root (solver/webroot): the self-test's http-01 probe then goes
// through the web server that serves it, as a webroot validation does.
type webrootStore struct {
	s  *webroot.Solver
	id certfleet.Identifier
}

func (w *webrootStore) PutChallenge(ctx context.Context, t certfleet.ChallengeToken) error {
	return w.s.Present(ctx, certfleet.Challenge{Type: certfleet.ChallengeHTTP01, Identifier: w.id, Token: t.Key, KeyAuthorization: t.KeyAuthorization})
}

func (w *webrootStore) DeleteChallenge(ctx context.Context, _ certfleet.ChallengeType, key string) error {
	return w.s.CleanUp(ctx, certfleet.Challenge{Type: certfleet.ChallengeHTTP01, Identifier: w.id, Token: key})
}

func (w *webrootStore) Challenge(context.Context, certfleet.ChallengeType, string) (certfleet.ChallengeToken, error) {
	return certfleet.ChallengeToken{}, certfleet.Errorf(certfleet.ENOTFOUND, "a web root is read by its web server, not by certfleet")
}

// startResponder makes sure something answers http-01 probes on the
// configured [http01] listen address while the check runs (issue 15,
// finding 5: the check worked only while serve ran). If the address is
// free, a temporary responder answering from the store is started there,
// as certfleet issue starts one, and the output says so; if it is taken
// (a running certfleet serve, or another program), the probe goes through
// whatever holds it, and the output says that too. stop ends it.
func (c *Checker) startResponder(ctx context.Context) (stop func()) {
	addr := c.Config.HTTP01Listen
	if addr == "" {
		return func() {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(c.Out, "note  http-01 listen address %s is in use (a running certfleet serve?): the probes go through whatever answers there\n", addr)
		} else {
			fmt.Fprintf(c.Out, "note  cannot listen on the http-01 address %s for a temporary responder (%v): the probes need a running certfleet serve\n", addr, err)
		}
		return func() {}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = (&http01.Responder{Store: c.HTTP01.Store}).Serve(rctx, ln)
	}()
	fmt.Fprintf(c.Out, "note  certfleet serve is not running: a temporary http-01 responder answers on %s for this check, as certfleet issue starts one\n", ln.Addr())
	return func() {
		cancel()
		ln.Close()
		<-done
	}
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
