package dns01

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultQueryTimeout bounds one DNS query (one server, one transport).
const DefaultQueryTimeout = 3 * time.Second

// maxCNAMEHops bounds a CNAME chain. Resolvers give up at a similar depth
// (BIND: 16; Unbound: 11), so a longer chain would not validate anyway.
const maxCNAMEHops = 10

// Resolver finds zones, CNAME targets and the authoritative nameservers of
// a zone. The zero value asks the resolvers of /etc/resolv.conf on port 53
// and queries authoritative servers on port 53.
type Resolver struct {
	// Nameservers are the recursive resolvers ("host:port", or "host" for
	// port 53) used to walk SOA and CNAME records and to look up NS sets
	// and nameserver addresses. Default: those of /etc/resolv.conf.
	Nameservers []string
	// AuthPort is the port authoritative servers are queried on. Default
	// "53"; tests run theirs on high ports.
	AuthPort string
	// Timeout bounds each query. Default DefaultQueryTimeout.
	Timeout time.Duration
}

// Nameserver is one authoritative server of a zone.
type Nameserver struct {
	Name string // the NS target, as "ns1.example.org."
	Addr string // "ip:port"
}

func (r *Resolver) timeout() time.Duration {
	if r == nil || r.Timeout <= 0 {
		return DefaultQueryTimeout
	}
	return r.Timeout
}

func (r *Resolver) authPort() string {
	if r == nil || r.AuthPort == "" {
		return "53"
	}
	return r.AuthPort
}

func (r *Resolver) nameservers() ([]string, error) {
	if r != nil && len(r.Nameservers) > 0 {
		out := make([]string, len(r.Nameservers))
		for i, ns := range r.Nameservers {
			out[i] = withPort(ns, "53")
		}
		return out, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("read resolvers from /etc/resolv.conf: %w (set [dns01] nameservers)", err)
	}
	if len(cc.Servers) == 0 {
		return nil, errors.New("no resolvers in /etc/resolv.conf (set [dns01] nameservers)")
	}
	out := make([]string, len(cc.Servers))
	for i, s := range cc.Servers {
		out[i] = net.JoinHostPort(s, cc.Port)
	}
	return out, nil
}

func withPort(addr, port string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), port)
}

// Exchange sends m to addr over UDP and retries over TCP when the answer is
// truncated (RFC 7766 §5: "the requestor SHOULD retry over TCP") or UDP
// fails (a firewall that drops UDP).
func Exchange(ctx context.Context, m *dns.Msg, addr string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: timeout}
	resp, _, err := c.ExchangeContext(ctx, m, addr)
	if err == nil && !resp.Truncated {
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.Net = "tcp"
	resp, _, tcpErr := c.ExchangeContext(ctx, m, addr)
	if tcpErr != nil {
		if err != nil {
			return nil, fmt.Errorf("query %s: udp: %v; tcp: %w", addr, err, tcpErr)
		}
		return nil, fmt.Errorf("query %s over tcp after a truncated udp answer: %w", addr, tcpErr)
	}
	return resp, nil
}

// query asks the recursive resolvers, one after another until one answers.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	servers, err := r.nameservers()
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	var errs []error
	for _, s := range servers {
		resp, err := Exchange(ctx, m, s, r.timeout())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
			errs = append(errs, fmt.Errorf("%s answered %s for %s %s", s, dns.RcodeToString[resp.Rcode], name, dns.TypeToString[qtype]))
			continue
		}
		return resp, nil
	}
	return nil, fmt.Errorf("look up %s %s: %w", name, dns.TypeToString[qtype], errors.Join(errs...))
}

// Query asks the recursive resolvers for name's records of type qtype.
// SERVFAIL and REFUSED count as failures; other answers, NXDOMAIN
// included, are returned.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	return r.query(ctx, name, qtype)
}

// FollowCNAME follows the CNAME chain that starts at name and returns the
// name at its end (name itself when it is no CNAME) and the chain walked.
// A loop or a chain longer than 10 names is an error.
func (r *Resolver) FollowCNAME(ctx context.Context, name string) (string, []string, error) {
	name = canonical(name)
	chain := []string{name}
	for range maxCNAMEHops {
		resp, err := r.query(ctx, name, dns.TypeCNAME)
		if err != nil {
			return "", chain, err
		}
		target, ok := cnameTarget(resp, name)
		if !ok {
			return name, chain, nil
		}
		for _, seen := range chain {
			if seen == target {
				return "", chain, fmt.Errorf("CNAME loop: %s → %s", strings.Join(chain, " → "), target)
			}
		}
		chain = append(chain, target)
		name = target
	}
	return "", chain, fmt.Errorf("CNAME chain longer than %d names: %s", maxCNAMEHops, strings.Join(chain, " → "))
}

// cnameTarget returns the target of the CNAME record owned by name in an
// answer, if there is one.
func cnameTarget(resp *dns.Msg, name string) (string, bool) {
	if resp == nil || resp.Rcode != dns.RcodeSuccess {
		return "", false
	}
	for _, rr := range resp.Answer {
		if c, ok := rr.(*dns.CNAME); ok && canonical(c.Hdr.Name) == name {
			return canonical(c.Target), true
		}
	}
	return "", false
}

// FindZone returns the zone that holds name (the closest enclosing zone
// cut) and its SOA record, found by asking for the SOA of name and of each
// of its parents in turn (the "SOA walk"). An answer's SOA record, or the
// SOA in the authority section of a negative answer (RFC 2308 §3), names
// the zone.
func (r *Resolver) FindZone(ctx context.Context, name string) (string, *dns.SOA, error) {
	name = canonical(name)
	failed := "" // the first name whose SOA query failed (SERVFAIL, REFUSED), and how
	for cand := name; ; {
		resp, err := r.query(ctx, cand, dns.TypeSOA)
		if err != nil {
			return "", nil, fmt.Errorf("no zone holds %s (zone cut not found): %w (check the nameservers in [dns01] answer for it: dig +trace)", name, err)
		}
		if zone, soa, ok := zoneFromAnswer(resp, cand, name); ok {
			return zone, soa, nil
		}
		if resp != nil && failed == "" && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			failed = fmt.Sprintf("%s SOA: %s", cand, dns.RcodeToString[resp.Rcode])
		}
		if cand == "." {
			break
		}
		cand = parent(cand)
	}
	if failed != "" {
		// Not "no zone": a resolver failed to find it (a lame or
		// broken delegation, DNSSEC failing, a resolver refusing us).
		return "", nil, fmt.Errorf("no zone holds %s (zone cut not found): the resolver answered %s (a broken delegation, DNSSEC validation failing, or a resolver that refuses this host: check the nameservers in [dns01] and the delegation with dig +trace)", name, failed)
	}
	return "", nil, fmt.Errorf("no zone holds %s (zone cut not found): no SOA record at it or any parent name (is the domain registered and delegated?)", name)
}

// zoneFromAnswer reads the zone out of the answer to "cand SOA?" asked
// while looking for the zone of name.
func zoneFromAnswer(resp *dns.Msg, cand, name string) (string, *dns.SOA, bool) {
	if resp == nil {
		return "", nil, false
	}
	if resp.Rcode == dns.RcodeSuccess {
		for _, rr := range resp.Answer {
			if soa, ok := rr.(*dns.SOA); ok && canonical(soa.Hdr.Name) == cand {
				return cand, soa, true
			}
		}
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return "", nil, false
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			owner := canonical(soa.Hdr.Name)
			if dns.IsSubDomain(owner, name) {
				return owner, soa, true
			}
		}
	}
	return "", nil, false
}

// Authoritative returns the authoritative nameservers of zone (its NS
// set), with one entry per address.
func (r *Resolver) Authoritative(ctx context.Context, zone string) ([]Nameserver, error) {
	zone = canonical(zone)
	resp, err := r.query(ctx, zone, dns.TypeNS)
	if err != nil {
		return nil, err
	}
	names := nsNames(resp, zone)
	if len(names) == 0 {
		return nil, fmt.Errorf("zone %s has no NS records (rcode %s)", zone, dns.RcodeToString[resp.Rcode])
	}
	var out []Nameserver
	var errs []error
	for _, n := range names {
		addrs, err := r.Addrs(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			out = append(out, Nameserver{Name: n, Addr: net.JoinHostPort(a, r.authPort())})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address for any nameserver of %s: %w", zone, errors.Join(errs...))
	}
	return out, nil
}

// nsNames returns the NS targets for zone in an answer, in order, once each.
func nsNames(resp *dns.Msg, zone string) []string {
	if resp == nil || resp.Rcode != dns.RcodeSuccess {
		return nil
	}
	var names []string
	for _, rr := range resp.Answer {
		if ns, ok := rr.(*dns.NS); ok && canonical(ns.Hdr.Name) == zone {
			n := canonical(ns.Ns)
			dup := false
			for _, m := range names {
				dup = dup || m == n
			}
			if !dup {
				names = append(names, n)
			}
		}
	}
	return names
}

// Addrs returns the IPv4 and IPv6 addresses of host (an IP address is
// returned as is).
func (r *Resolver) Addrs(ctx context.Context, host string) ([]string, error) {
	if ip := net.ParseIP(strings.TrimSuffix(host, ".")); ip != nil {
		return []string{ip.String()}, nil
	}
	var out []string
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, err := r.query(ctx, host, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range resp.Answer {
			switch a := rr.(type) {
			case *dns.A:
				out = append(out, a.A.String())
			case *dns.AAAA:
				out = append(out, a.AAAA.String())
			}
		}
	}
	if len(out) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("%s has no A or AAAA record", host)
	}
	return out, nil
}

// QueryTXT asks one authoritative server for the TXT values at name,
// without recursion. A negative answer is no values and no error.
func QueryTXT(ctx context.Context, addr, name string, timeout time.Duration) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(canonical(name), dns.TypeTXT)
	m.RecursionDesired = false
	resp, err := Exchange(ctx, m, addr, timeout)
	if err != nil {
		return nil, err
	}
	return txtValues(resp, canonical(name))
}

// txtValues reads the TXT values owned by name out of an answer; each value
// is its character-strings joined (RFC 8555 §8.4 values fit in one, but a
// server may split long ones).
func txtValues(resp *dns.Msg, name string) ([]string, error) {
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return nil, fmt.Errorf("answered %s", dns.RcodeToString[resp.Rcode])
	}
	var out []string
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok && canonical(t.Hdr.Name) == name {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

func canonical(name string) string { return dns.CanonicalName(name) }

func parent(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}
