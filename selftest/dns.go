package selftest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/dns01"
)

// testDNS01 runs what the scheduler's dns-01 preflight checks (the zone
// found, the CNAME chain at _acme-challenge followed into a zone the
// provider may write, the provider's credentials where it can check them)
// and then that the configured resolvers (the public ones, as the CA's
// would) see the same delegation: a CNAME just added at the customer's
// DNS host may not have reached them yet.
func (t *Tester) testDNS01(ctx context.Context, spec certfleet.CertificateSpec, id certfleet.Identifier) (string, string) {
	if t.DNS01 == nil {
		return certfleet.WaitDNS01, fmt.Sprintf("%s uses dns-01, and no dns-01 provider is configured: add [dns01.providers] (or use dns-persist-01, which needs none)", id.Value)
	}
	if err := t.DNS01.PreflightVia(ctx, spec.DNSProvider, []certfleet.Identifier{id}); err != nil {
		return certfleet.WaitDNS01, fmt.Sprintf("dns-01 for %s cannot work yet: %v", id.Value, err)
	}
	_, chain, err := t.DNS01.Locate(ctx, id.Value)
	if err != nil {
		return certfleet.WaitDNS01, fmt.Sprintf("dns-01 for %s: %v", id.Value, err)
	}
	if len(chain) < 2 {
		return "", "" // no delegation to see
	}
	name := dns01.RecordName(id.Value)
	_, seen, err := t.resolver().FollowCNAME(ctx, name)
	if err != nil {
		return certfleet.WaitDNS01, fmt.Sprintf("the resolvers cannot follow the CNAME at %s (%v): check the delegation to %s", name, err, chain[1])
	}
	if len(seen) < 2 || !strings.EqualFold(seen[1], chain[1]) {
		got := "no CNAME"
		if len(seen) >= 2 {
			got = "a CNAME to " + seen[1]
		}
		return certfleet.WaitDNS01, fmt.Sprintf("the resolvers see %s at %s, not the CNAME to %s that the zone's servers have: wait for it to propagate (its TTL) or fix it at the DNS host",
			got, strings.TrimSuffix(name, "."), strings.TrimSuffix(chain[1], "."))
	}
	return "", ""
}

// testPersist checks the dns-persist-01 record of id (draft-ietf-acme-
// dns-persist-01 §4.1, §4.2) as the CA's verification would: a TXT record
// at _validation-persist.NAME whose issuer-domain-name is one of the CA's,
// whose accounturi is this account's URL, with policy=wildcard for a
// wildcard (§5), and not past its persistUntil (§4.1 item 5). A record
// within PersistWarning of its persistUntil passes with a warning logged.
// certfleet never writes this record: it is the domain owner's grant.
func (t *Tester) testPersist(ctx context.Context, spec certfleet.CertificateSpec, id certfleet.Identifier) (string, string) {
	if t.Persist == nil {
		return certfleet.WaitPersist, "dns-persist-01 is not available: certfleet cannot tell the account's URL"
	}
	who, err := t.Persist(ctx, spec.AccountName())
	if err != nil {
		return certfleet.WaitProbe, fmt.Sprintf("dns-persist-01 for %s: account %s: %v", id.Value, spec.AccountName(), err)
	}
	name := certfleet.PersistRecordName(id.Value)
	resp, err := t.resolver().Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return certfleet.WaitPersist, fmt.Sprintf("cannot look up the TXT record %s (%v)", name, err)
	}
	var values []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(dns.CanonicalName(txt.Hdr.Name), dns.CanonicalName(name)) {
			values = append(values, strings.Join(txt.Txt, ""))
		}
	}
	want := PersistRecord(who, id)
	if len(values) == 0 {
		return certfleet.WaitPersist, fmt.Sprintf("the dns-persist-01 record is missing: publish %s TXT %q (certfleet persist-record prints it)", name, want)
	}
	res := CheckPersist(values, who, id.IsWildcard(), t.now())
	if !res.OK {
		return certfleet.WaitPersist, fmt.Sprintf("no TXT record at %s authorizes this account: %s; publish %s TXT %q", name, res.Problem, name, want)
	}
	warn := t.PersistWarning
	if warn <= 0 {
		warn = DefaultPersistWarning
	}
	if !res.Until.IsZero() && res.Until.Sub(t.now()) < warn {
		t.logger().Warn("dns-persist-01 record expires soon: after its persistUntil the CA refuses it; publish one with a later persistUntil (or none)",
			certfleet.LogIdentifier, id.Value, "record", name, "persist_until", res.Until)
	}
	return "", ""
}

// PersistRecord returns the TXT value that authorizes who for id, with
// the CA's first issuer domain name; policy=wildcard for a wildcard.
func PersistRecord(who certfleet.PersistIdentity, id certfleet.Identifier) string {
	issuer := "<issuer domain name of the CA>"
	if len(who.IssuerDomainNames) > 0 {
		issuer = who.IssuerDomainNames[0]
	}
	return certfleet.PersistRecordValue(issuer, who.AccountURL, id.IsWildcard())
}

// PersistCheck is what CheckPersist found.
type PersistCheck struct {
	OK bool
	// Problem says why no record authorizes the account (when !OK).
	Problem string
	// Until is the matching record's persistUntil (zero: none).
	Until time.Time
}

// CheckPersist reads TXT values as the CA's verification does
// (draft-ietf-acme-dns-persist-01 §4.2): records for other issuers are
// ignored; a record for one of who's issuers must have an accounturi equal
// to who.AccountURL (simple string comparison), policy=wildcard when
// wildcard (compared case-insensitively, §4.1 item 4), and a persistUntil
// (a base-10 UNIX time, §4.1 item 5) not before now. Unknown parameters
// are ignored (§4.1 item 1).
func CheckPersist(values []string, who certfleet.PersistIdentity, wildcard bool, now time.Time) PersistCheck {
	var problems []string
	for _, v := range values {
		parts := strings.Split(v, ";")
		issuer := strings.ToLower(strings.TrimSpace(parts[0]))
		if !slices.Contains(who.IssuerDomainNames, issuer) {
			problems = append(problems, fmt.Sprintf("a record names issuer %q, not %s", issuer, strings.Join(who.IssuerDomainNames, " or ")))
			continue
		}
		params := map[string]string{}
		bad := ""
		for _, p := range parts[1:] {
			tag, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || strings.TrimSpace(tag) == "" {
				bad = fmt.Sprintf("malformed parameter %q", strings.TrimSpace(p))
				break
			}
			params[strings.ToLower(strings.TrimSpace(tag))] = strings.TrimSpace(val)
		}
		if bad != "" {
			problems = append(problems, bad)
			continue
		}
		switch acct := params["accounturi"]; {
		case acct == "":
			problems = append(problems, "a record lacks accounturi")
			continue
		case acct != who.AccountURL:
			problems = append(problems, fmt.Sprintf("a record authorizes account %s, not %s", acct, who.AccountURL))
			continue
		}
		if wildcard && !strings.EqualFold(params["policy"], "wildcard") {
			problems = append(problems, "the record lacks policy=wildcard, which a wildcard needs")
			continue
		}
		var until time.Time
		if s, ok := params["persistuntil"]; ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				problems = append(problems, fmt.Sprintf("persistUntil %q is not a UNIX time", s))
				continue
			}
			until = time.Unix(n, 0).UTC()
			if now.After(until) {
				problems = append(problems, fmt.Sprintf("the record's persistUntil passed at %s", until.Format(time.RFC3339)))
				continue
			}
		}
		return PersistCheck{OK: true, Until: until}
	}
	if len(problems) == 0 {
		problems = []string{"no record"}
	}
	return PersistCheck{Problem: strings.Join(problems, "; ")}
}

// CheckPersist checks, just before a dns-persist-01 challenge is answered,
// that a record authorizes the account answering it, with the issuer
// domain names the CA offered in the challenge (§3.1): an error says what
// is wrong and what to publish.
func (t *Tester) CheckPersist(ctx context.Context, chal certfleet.Challenge) error {
	who := certfleet.PersistIdentity{AccountURL: chal.AccountURL, IssuerDomainNames: chal.IssuerDomainNames}
	name := certfleet.PersistRecordName(chal.Identifier.Value)
	resp, err := t.resolver().Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	var values []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok && strings.EqualFold(dns.CanonicalName(txt.Hdr.Name), dns.CanonicalName(name)) {
			values = append(values, strings.Join(txt.Txt, ""))
		}
	}
	res := CheckPersist(values, who, chal.Wildcard, t.now())
	if !res.OK {
		id := chal.Identifier
		if chal.Wildcard {
			id.Value = "*." + id.Value
		}
		return certfleet.Errorf(certfleet.EINVALID, "dns-persist-01 for %s: no TXT record at %s authorizes account %s (%s): publish %s TXT %q",
			id.Value, name, who.AccountURL, res.Problem, name, PersistRecord(who, id))
	}
	return nil
}
