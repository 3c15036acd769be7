// Package rfc2136 is a dns01.Provider that writes TXT records with DNS
// dynamic updates (RFC 2136) signed with TSIG (RFC 8945), as BIND, Knot,
// PowerDNS and Windows DNS accept them.
//
// Each update adds or deletes exactly one TXT record (RFC 2136 §2.5.1 "Add
// To An RRset" and §2.5.4 "Delete An RR From An RRset"), never the whole
// RRset, so that two values under one name (a wildcard and its apex) and
// records of other clients survive.
//
// It does not check propagation; dns01.Solver does.
package rfc2136

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/dns01"
)

// TTL of the records added: short, so that a resolver that cached the
// NXDOMAIN or an old value asks again soon (RFC 2308 caps negative caching
// at the SOA minimum, which is ours to not make worse).
const TTL = 60

// DefaultTimeout bounds one update.
const DefaultTimeout = 10 * time.Second

// Algorithms maps the names accepted in configuration to TSIG algorithms.
// hmac-md5 is usable only with AllowInsecure: RFC 8945 §6 keeps it for
// compatibility with old servers, not for new use.
var Algorithms = map[string]string{
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
	"hmac-md5":    dns.HmacMD5,
}

// Algorithm returns the TSIG algorithm of a configured name, as Algorithms
// has it: any case, and with or without the trailing dot of the DNS name
// it is ("hmac-sha256." is lego's and BIND's spelling); ok is false for an
// unknown one.
func Algorithm(name string) (string, bool) {
	alg, ok := Algorithms[strings.TrimSuffix(strings.ToLower(name), ".")]
	return alg, ok
}

// Provider sends RFC 2136 updates. Safe for concurrent use.
type Provider struct {
	// Server is the primary's "host:port" (port 53 if left out). Default:
	// the MNAME of the zone's SOA record (RFC 2136 §4: "the requestor
	// should send the update to the primary master").
	Server string
	// Zone is the zone to update. Default: the zone the solver found by
	// the SOA walk.
	Zone string
	// KeyName, Algorithm ("hmac-sha256", "hmac-sha384", "hmac-sha512",
	// or "hmac-md5" with AllowInsecure) and Secret (base64) sign every
	// update. Secret is a secret: it never appears in errors or logs.
	KeyName, Algorithm, Secret string
	// AllowInsecure permits hmac-md5 and, with no KeyName, unsigned
	// updates. Off by default: an unsigned update can be forged by anyone
	// who can send a packet to the server.
	AllowInsecure bool
	// Resolver looks up the SOA MNAME's address when Server is "".
	Resolver *dns01.Resolver
	// Timeout bounds one update. Default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock TSIG signatures are timed with. Default time.Now.
	Now func() time.Time
}

var (
	_ dns01.Provider = (*Provider)(nil)
	_ dns01.Checker  = (*Provider)(nil)
)

// Validate checks the settings without network access.
func (p *Provider) Validate() error {
	if p.KeyName == "" {
		if !p.AllowInsecure {
			return errors.New("no TSIG key: set key_name, algorithm and secret (unsigned updates need allow_insecure = true)")
		}
		return nil
	}
	alg := p.Algorithm
	if alg == "" {
		alg = "hmac-sha256"
	}
	tsigAlg, ok := Algorithm(alg)
	if !ok {
		return fmt.Errorf("unknown TSIG algorithm %q (use hmac-sha256, hmac-sha384 or hmac-sha512)", p.Algorithm)
	}
	if tsigAlg == dns.HmacMD5 && !p.AllowInsecure {
		return errors.New("TSIG algorithm hmac-md5 is weak: use hmac-sha256 (or set allow_insecure = true)")
	}
	if p.Secret == "" {
		return errors.New("TSIG secret is empty")
	}
	if _, err := fromBase64(p.Secret); err != nil {
		return errors.New("TSIG secret is not base64 (the secret is not shown); copy it from the tsig-keygen output")
	}
	return nil
}

// Present adds rec.Value to the TXT RRset at rec.FQDN.
func (p *Provider) Present(ctx context.Context, rec dns01.Record) error {
	return p.update(ctx, rec, func(m *dns.Msg, rr dns.RR) { m.Insert([]dns.RR{rr}) })
}

// CleanUp deletes the one TXT record with rec.Value; deleting a record that
// is not there succeeds (RFC 2136 §3.4.2.4: it is "silently ignored").
func (p *Provider) CleanUp(ctx context.Context, rec dns01.Record) error {
	return p.update(ctx, rec, func(m *dns.Msg, rr dns.RR) { m.Remove([]dns.RR{rr}) })
}

// Check sends a signed update that deletes a TXT value nobody uses at
// rec.FQDN: it changes nothing, but the server checks the signature and its
// update policy for TXT records at that name, so a wrong key or a missing
// grant shows here, before any order.
func (p *Provider) Check(ctx context.Context, rec dns01.Record) error {
	rec.Value = "certfleet-preflight-" + fmt.Sprint(time.Now().UnixNano())
	return p.CleanUp(ctx, rec)
}

func (p *Provider) update(ctx context.Context, rec dns01.Record, op func(*dns.Msg, dns.RR)) error {
	if err := p.Validate(); err != nil {
		return err
	}
	zone := rec.Zone
	if p.Zone != "" {
		zone = p.Zone
	}
	zone = dns.CanonicalName(zone)
	if !dns.IsSubDomain(zone, dns.CanonicalName(rec.FQDN)) {
		return fmt.Errorf("record %s is not in zone %s", rec.FQDN, zone)
	}
	server, err := p.server(ctx, zone)
	if err != nil {
		return err
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.CanonicalName(rec.FQDN), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: TTL}, Txt: []string{rec.Value}}
	op(m, rr)
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &dns.Client{Net: "tcp", Timeout: timeout}
	if p.KeyName != "" {
		name := dns.CanonicalName(p.KeyName)
		alg := p.Algorithm
		if alg == "" {
			alg = "hmac-sha256"
		}
		c.TsigSecret = map[string]string{name: p.Secret}
		tsigAlg, _ := Algorithm(alg)
		now := time.Now
		if p.Now != nil {
			now = p.Now
		}
		m.SetTsig(name, tsigAlg, 300, now().Unix())
	}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil && resp != nil && resp.Rcode != dns.RcodeSuccess {
		// An error answer: miekg/dns reports any NOTAUTH carrying a TSIG
		// record as ErrAuth, before looking at it. The answer itself
		// says what failed (the rcode and the TSIG error).
		return rcodeError(resp, zone, server, p.KeyName, rec.FQDN)
	}
	switch {
	case errors.Is(err, dns.ErrTime):
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: the server's answer is signed at a time more than 5 minutes from this host's clock (TSIG BADTIME): fix the clock (NTP) here or on the server", zone, server)
	case errors.Is(err, dns.ErrSig), errors.Is(err, dns.ErrAuth), errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: the server's answer does not verify with TSIG key %s (%v): check algorithm and secret against the server's key", zone, server, p.KeyName, err)
	case err != nil:
		return fmt.Errorf("update of zone %s at %s: %w", zone, server, err)
	}
	return rcodeError(resp, zone, server, p.KeyName, rec.FQDN)
}

// rcodeError explains an update's response code (RFC 2136 §2.2, RFC 8945
// §5.3.2 for the TSIG errors).
func rcodeError(resp *dns.Msg, zone, server, key, fqdn string) error {
	if resp.Rcode == dns.RcodeSuccess {
		return nil
	}
	rc := dns.RcodeToString[resp.Rcode]
	if t := resp.IsTsig(); t != nil && t.Error != 0 {
		rc += "/" + dns.RcodeToString[int(t.Error)]
	}
	var tsigErr uint16
	if t := resp.IsTsig(); t != nil {
		tsigErr = t.Error
	}
	switch {
	case tsigErr == dns.RcodeBadKey:
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s: the server does not know a TSIG key named %s: set key_name to the name of the key in the server's configuration (key \"NAME\" { ... } in named.conf)", zone, server, rc, key)
	case tsigErr == dns.RcodeBadSig:
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s: the server knows key %s but the signature does not verify: the secret or the algorithm differs from the server's; copy both from the key's definition (tsig-keygen output)", zone, server, rc, key)
	case tsigErr == dns.RcodeBadTime:
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s: this host's clock and the server's differ by more than the 5 minutes TSIG allows: fix the clock (NTP) here or on the server; key and secret are fine", zone, server, rc)
	case tsigErr != 0:
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s: the server refused TSIG key %s", zone, server, rc, key)
	}
	switch resp.Rcode {
	case dns.RcodeNotAuth:
		if key == "" {
			return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s: the server requires a TSIG key, or is not authoritative for the zone", zone, server, rc)
		}
		if resp.IsTsig() == nil {
			// BIND signs every answer to a signed request, naming the TSIG
			// error; an unsigned NOTAUTH does not say which it is.
			return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s (unsigned answer): the server rejected TSIG key %s (check key_name, algorithm and secret) or is not authoritative for the zone (check server)", zone, server, rc, key)
		}
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: %s: the server accepted key %s but is not authoritative for zone %s: set server to the zone's primary (or leave it out to use the zone's SOA MNAME) and check zone is the zone the name is in", zone, server, rc, key, zone)
	case dns.RcodeServerFailure:
		return fmt.Errorf("update of zone %s at %s: SERVFAIL: the server could not apply the update (zone not loaded, journal not writable?): see the server's log", zone, server)
	case dns.RcodeRefused:
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: REFUSED: key %s may not change TXT records at %s (check the zone's update-policy, e.g. grant %s subdomain %s TXT;)", zone, server, keyOrNone(key), fqdn, strings.TrimSuffix(keyOrNone(key), "."), zone)
	case dns.RcodeNotZone:
		return certfleet.Errorf(certfleet.EDNSCONFIG, "update of zone %s at %s: NOTZONE: %s is outside the zone", zone, server, fqdn)
	}
	return fmt.Errorf("update of zone %s at %s: %s", zone, server, rc)
}

func keyOrNone(k string) string {
	if k == "" {
		return "(unsigned)"
	}
	return k
}

// server returns the address to send updates for zone to.
func (p *Provider) server(ctx context.Context, zone string) (string, error) {
	if p.Server != "" {
		if _, _, err := net.SplitHostPort(p.Server); err == nil {
			return p.Server, nil
		}
		return net.JoinHostPort(p.Server, "53"), nil
	}
	r := p.Resolver
	if r == nil {
		r = &dns01.Resolver{}
	}
	_, soa, err := r.FindZone(ctx, zone)
	if err != nil {
		return "", fmt.Errorf("find the primary of %s: %w (or set server)", zone, err)
	}
	addrs, err := r.Addrs(ctx, soa.Ns)
	if err != nil {
		return "", fmt.Errorf("address of %s, the primary (SOA MNAME) of %s: %w (or set server)", soa.Ns, zone, err)
	}
	port := r.AuthPort
	if port == "" {
		port = "53"
	}
	return net.JoinHostPort(addrs[0], port), nil
}

func fromBase64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(s)
}
