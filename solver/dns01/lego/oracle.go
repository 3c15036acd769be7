package lego

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	legodns01 "github.com/go-acme/lego/v5/challenge/dns01"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/miekg/dns"
)

// Why an oracle.
//
// A lego provider's Present(ctx, domain, token, keyAuth) does two DNS
// lookups of its own before it calls the API: it follows the CNAME chain
// from _acme-challenge.<domain> (dns01.GetChallengeInfo), and it finds the
// zone of the end of that chain by an SOA walk (FindZoneByFqdn). Both go
// through lego's process-wide default client (dns01.DefaultClient), which
// asks the resolvers of /etc/resolv.conf. certfleet has already done both
// (dns01.Solver.Locate) with its own resolvers, and the record's
// propagation is checked, and its journal entry written, for that result.
// Letting lego resolve again could give another answer (split horizon, a
// CNAME changed in between, other resolvers) and write the record where
// certfleet does not look.
//
// lego v5.6.0 offers no provider call by FQDN, and its only switch for
// CNAME following is the LEGO_DISABLE_CNAME_SUPPORT environment variable,
// read at every call: setting it would change the whole process, and
// without following, a delegation target that does not start with
// "_acme-challenge." could not be expressed at all. So the adapter answers
// lego's lookups itself: a small DNS server on loopback, installed once as
// lego's default client, that knows only the records being written at
// the moment and answers exactly what certfleet resolved — the CNAME from
// _acme-challenge.<domain> to the record's FQDN, no CNAME at the FQDN, and
// the zone's SOA at the zone apex. Any other question is REFUSED, so a
// provider that looked up something else would fail loudly rather than
// write elsewhere. lego then resolves nothing on the network.

// oracle is the loopback DNS server lego's default client asks.
type oracle struct {
	addr     string
	udp, tcp *dns.Server

	mu     sync.Mutex       // guards cnames, fqdns, zones
	cnames map[string]*hold // _acme-challenge.<domain>. → its CNAME target
	fqdns  map[string]int   // record names being written → holders
	zones  map[string]int   // zone apexes → holders
}

type hold struct {
	target string
	n      int
}

// lego keeps its resolver and logger in package variables, so there is one
// oracle per process, started by the first New.
var (
	oracleOnce sync.Once
	theOracle  *oracle
	oracleErr  error
)

// sharedOracle starts the oracle once, makes it lego's default resolver
// and sends lego's own log lines to lg (nil discards them).
func sharedOracle(lg *slog.Logger) (*oracle, error) {
	oracleOnce.Do(func() {
		if lg == nil {
			lg = slog.New(slog.DiscardHandler)
		}
		// lego logs to stdout by default; its informational lines
		// ("Found CNAME entry") are details of certfleet's own steps.
		legolog.SetDefault(slog.New(demote{lg.Handler()}).With("library", "lego"))
		theOracle, oracleErr = startOracle()
		if oracleErr != nil {
			return
		}
		legodns01.SetDefaultClient(legodns01.NewClient(&legodns01.Options{
			RecursiveNameservers: []string{theOracle.addr},
			Timeout:              5 * time.Second,
		}))
	})
	return theOracle, oracleErr
}

func startOracle() (*oracle, error) {
	o := &oracle{cnames: map[string]*hold{}, fqdns: map[string]int{}, zones: map[string]int{}}
	// lego asks over UDP and retries over TCP on truncation: serve both on
	// one port. The port may be taken for TCP only; try a few.
	var err error
	for range 10 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("lego adapter: listen on loopback for lego's lookups: %w", err)
		}
		var l net.Listener
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		o.addr = pc.LocalAddr().String()
		o.udp = &dns.Server{PacketConn: pc, Handler: o}
		o.tcp = &dns.Server{Listener: l, Handler: o}
		go o.udp.ActivateAndServe()
		go o.tcp.ActivateAndServe()
		return o, nil
	}
	return nil, fmt.Errorf("lego adapter: listen on loopback for lego's lookups: %w", err)
}

// hold makes the oracle answer for rec until release is called: source is
// _acme-challenge.<domain>., fqdn where the record goes, zone its zone.
func (o *oracle) hold(source, fqdn, zone string) (release func(), err error) {
	source, fqdn, zone = dns.CanonicalName(source), dns.CanonicalName(fqdn), dns.CanonicalName(zone)
	o.mu.Lock()
	defer o.mu.Unlock()
	if source != fqdn {
		h := o.cnames[source]
		if h != nil && h.target != fqdn {
			return nil, fmt.Errorf("the CNAME delegation of %s changed while a record was being written (%s, then %s); try again", source, h.target, fqdn)
		}
		if h == nil {
			h = &hold{target: fqdn}
			o.cnames[source] = h
		}
		h.n++
	}
	o.fqdns[fqdn]++
	o.zones[zone]++
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if source != fqdn {
			if h := o.cnames[source]; h != nil {
				if h.n--; h.n == 0 {
					delete(o.cnames, source)
				}
			}
		}
		if o.fqdns[fqdn]--; o.fqdns[fqdn] == 0 {
			delete(o.fqdns, fqdn)
		}
		if o.zones[zone]--; o.zones[zone] == 0 {
			delete(o.zones, zone)
		}
	}, nil
}

// underHeldZone reports whether name is in (or is) a zone being held.
func (o *oracle) underHeldZone(name string) bool {
	for z := range o.zones {
		if dns.IsSubDomain(z, name) {
			return true
		}
	}
	return false
}

// ServeDNS answers from what is held; see "Why an oracle".
func (o *oracle) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	o.mu.Lock()
	h := o.cnames[name]
	_, isFQDN := o.fqdns[name]
	_, isZone := o.zones[name]
	under := o.underHeldZone(name)
	o.mu.Unlock()
	switch {
	case h != nil && (q.Qtype == dns.TypeCNAME || q.Qtype == dns.TypeTXT):
		resp.Answer = append(resp.Answer, &dns.CNAME{
			Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET},
			Target: h.target,
		})
	case isZone && q.Qtype == dns.TypeSOA:
		// Refresh 0: lego caches a zone for Refresh seconds; it must ask
		// again next time, when the hold may say otherwise.
		resp.Answer = append(resp.Answer, &dns.SOA{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
			Ns:  "certfleet.invalid.", Mbox: "certfleet.invalid.", Serial: 1, Minttl: 0,
		})
	case isFQDN || under || h != nil:
		// A name certfleet resolved: no CNAME there, not a zone apex.
	default:
		resp.Rcode = dns.RcodeRefused
	}
	w.WriteMsg(resp)
}

// demote logs lego's Info lines at Debug level.
type demote struct{ h slog.Handler }

func (d demote) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return d.h.Enabled(ctx, l)
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return d.h.Handle(ctx, r)
}

func (d demote) WithAttrs(as []slog.Attr) slog.Handler { return demote{d.h.WithAttrs(as)} }
func (d demote) WithGroup(g string) slog.Handler       { return demote{d.h.WithGroup(g)} }

// challengeName is the dns-01 name lego derives from a domain.
func challengeName(domain string) string {
	return dns.CanonicalName("_acme-challenge." + strings.TrimPrefix(domain, "*."))
}
