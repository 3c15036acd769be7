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
	if _, ok := Algorithms[strings.ToLower(alg)]; !ok {
		return fmt.Errorf("unknown TSIG algorithm %q (use hmac-sha256, hmac-sha384 or hmac-sha512)", p.Algorithm)
	}
	if strings.EqualFold(alg, "hmac-md5") && !p.AllowInsecure {
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
		m.SetTsig(name, Algorithms[strings.ToLower(alg)], 300, time.Now().Unix())
	}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	switch {
	case errors.Is(err, dns.ErrSig), errors.Is(err, dns.ErrAuth), errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		return fmt.Errorf("update of zone %s at %s: TSIG key %s was rejected (%v): check key_name, algorithm and secret against the server's key", zone, server, p.KeyName, err)
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
	switch resp.Rcode {
	case dns.RcodeNotAuth:
		if key == "" {
			return fmt.Errorf("update of zone %s at %s: %s: the server requires a TSIG key, or is not authoritative for the zone", zone, server, rc)
		}
		return fmt.Errorf("update of zone %s at %s: %s: the server rejected TSIG key %s (wrong secret, algorithm or name?) or is not authoritative for the zone", zone, server, rc, key)
	case dns.RcodeRefused:
		return fmt.Errorf("update of zone %s at %s: REFUSED: key %s may not change TXT records at %s (check the zone's update-policy, e.g. grant %s subdomain %s TXT;)", zone, server, keyOrNone(key), fqdn, strings.TrimSuffix(keyOrNone(key), "."), zone)
	case dns.RcodeNotZone:
		return fmt.Errorf("update of zone %s at %s: NOTZONE: %s is outside the zone", zone, server, fqdn)
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
