// Package dnstest runs small authoritative DNS servers on loopback for the
// dns-01 tests: zones with SOA and NS records, TXT, CNAME and A records,
// RFC 2136 dynamic updates signed with TSIG, secondaries that receive the
// primary's changes after a delay, and, optionally, a resolver mode that
// follows CNAME chains across the zones it serves (what a recursive resolver
// does for a real CA; Pebble's validator does not chase CNAMEs itself).
//
// It is test infrastructure, imported only from _test.go files: it is no
// DNS server to run for anything else. For an interop test against a real
// server, see the BIND 9 test in cmd/certfleet.
package dnstest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Server is one DNS server listening on UDP and TCP at one address.
// Its methods are safe for concurrent use.
type Server struct {
	addr string
	tcp  *dns.Server
	udp  *dns.Server

	// ChaseCNAME makes answers follow CNAME chains through the zones this
	// server holds, as a recursive resolver would. Set before use.
	ChaseCNAME bool

	mu          sync.Mutex // guards the fields below
	zones       map[string]bool
	rrs         map[string][]dns.RR // lower-case owner name → records
	secondaries []secondary
	tsig        map[string]string // key name → base64 secret
	applied     map[string]time.Time
	updates     int
	queries     int
}

type secondary struct {
	s   *Server
	lag time.Duration
}

// Start starts a server on ip ("127.0.0.1") and port ("0" picks one; TCP
// and UDP get the same). tsig maps TSIG key names (fully qualified) to
// base64 secrets; updates must be signed by one of them.
func Start(ip, port string, tsig map[string]string) (*Server, error) {
	s := &Server{zones: map[string]bool{}, rrs: map[string][]dns.RR{}, tsig: map[string]string{}, applied: map[string]time.Time{}}
	for k, v := range tsig {
		s.tsig[dns.Fqdn(strings.ToLower(k))] = v
	}
	var lastErr error
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			return nil, fmt.Errorf("dnstest: listen tcp: %w", err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			lastErr = err
			if port != "0" {
				break
			}
			continue
		}
		s.addr = ln.Addr().String()
		secrets := make(map[string]string, len(s.tsig))
		for k, v := range s.tsig {
			secrets[k] = v
		}
		s.tcp = &dns.Server{Listener: ln, Handler: s, TsigSecret: secrets, MsgAcceptFunc: accept, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		s.udp = &dns.Server{PacketConn: pc, Handler: s, TsigSecret: secrets, MsgAcceptFunc: accept, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		started := make(chan struct{}, 2)
		s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
		go s.tcp.ActivateAndServe() //nolint:errcheck // ends with Close
		go s.udp.ActivateAndServe() //nolint:errcheck // ends with Close
		<-started
		<-started
		return s, nil
	}
	return nil, fmt.Errorf("dnstest: listen udp next to tcp: %w", lastErr)
}

// accept is miekg/dns's default acceptance check, but for UPDATE, which
// the default answers with NOTIMP.
func accept(dh dns.Header) dns.MsgAcceptAction {
	if int(dh.Bits>>11)&0xF == dns.OpcodeUpdate {
		return dns.MsgAccept
	}
	return dns.DefaultMsgAcceptFunc(dh)
}

// Addr returns "ip:port".
func (s *Server) Addr() string { return s.addr }

// Port returns the port.
func (s *Server) Port() string { _, p, _ := net.SplitHostPort(s.addr); return p }

// Close stops the server.
func (s *Server) Close() error { return errors.Join(s.tcp.Shutdown(), s.udp.Shutdown()) }

// AddZone makes the server authoritative for zone, with an SOA whose MNAME
// is ns[0] and one NS record per ns name.
func (s *Server) AddZone(zone string, ns ...string) {
	zone = canon(zone)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[zone] = true
	s.addLocked(&dns.SOA{Hdr: hdr(zone, dns.TypeSOA), Ns: canon(ns[0]), Mbox: "hostmaster." + zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60})
	for _, n := range ns {
		s.addLocked(&dns.NS{Hdr: hdr(zone, dns.TypeNS), Ns: canon(n)})
	}
}

// AddSecondary makes sec receive every accepted update lag after this
// server applied it.
func (s *Server) AddSecondary(sec *Server, lag time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secondaries = append(s.secondaries, secondary{sec, lag})
}

// Add adds records in zone-file syntax ("name 60 IN A 127.0.0.2").
func (s *Server) Add(records ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			panic(fmt.Sprintf("dnstest: %q: %v", r, err))
		}
		s.addLocked(rr)
	}
}

// SetTXT replaces the TXT values at name (on this server only).
func (s *Server) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := canon(name)
	s.rrs[n] = slices.DeleteFunc(s.rrs[n], func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeTXT })
	for _, v := range values {
		s.addLocked(&dns.TXT{Hdr: hdr(n, dns.TypeTXT), Txt: []string{v}})
	}
}

// SetA replaces the A records at name (on this server only): a test moves
// a name to another address, or back.
func (s *Server) SetA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := canon(name)
	s.rrs[n] = slices.DeleteFunc(s.rrs[n], func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeA })
	for _, ip := range ips {
		s.addLocked(&dns.A{Hdr: hdr(n, dns.TypeA), A: net.ParseIP(ip)})
	}
}

// TXT returns the TXT values at name.
func (s *Server) TXT(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, rr := range s.rrs[canon(name)] {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// AppliedAt returns when the TXT value at name was last added here.
func (s *Server) AppliedAt(name, value string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[canon(name)+" "+value]
}

// Applied returns how many TXT values were ever added at name here.
func (s *Server) Applied(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.applied {
		if strings.HasPrefix(k, canon(name)+" ") {
			n++
		}
	}
	return n
}

// Updates returns how many updates this server accepted.
func (s *Server) Updates() int { s.mu.Lock(); defer s.mu.Unlock(); return s.updates }

// Queries returns how many queries (not updates) it answered.
func (s *Server) Queries() int { s.mu.Lock(); defer s.mu.Unlock(); return s.queries }

func canon(name string) string { return dns.Fqdn(strings.ToLower(name)) }

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
}

func (s *Server) addLocked(rr dns.RR) {
	rr.Header().Name = canon(rr.Header().Name)
	n := rr.Header().Name
	for _, old := range s.rrs[n] {
		if dns.IsDuplicate(old, rr) {
			return
		}
	}
	s.rrs[n] = append(s.rrs[n], rr)
	if t, ok := rr.(*dns.TXT); ok {
		s.applied[n+" "+strings.Join(t.Txt, "")] = time.Now()
	}
}

// zoneOf returns the longest zone this server holds that contains name.
func (s *Server) zoneOf(name string) string {
	best := ""
	for z := range s.zones {
		if dns.IsSubDomain(z, name) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if req.Opcode == dns.OpcodeUpdate {
		s.update(w, req)
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.Lock()
	s.queries++
	s.answerLocked(m, canon(q.Name), q.Qtype, 0)
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}

func (s *Server) answerLocked(m *dns.Msg, name string, qtype uint16, depth int) {
	zone := s.zoneOf(name)
	if zone == "" {
		if depth == 0 {
			if qtype == dns.TypeA {
				// Every other name is this host, for http-01 validations.
				h := hdr(name, dns.TypeA)
				m.Answer = append(m.Answer, &dns.A{Hdr: h, A: net.IPv4(127, 0, 0, 1)})
				return
			}
			// A resolver finds no such name; an authoritative-only
			// server refuses to answer for others' zones.
			m.Rcode = dns.RcodeRefused
			if s.ChaseCNAME {
				m.Rcode = dns.RcodeNameError
			}
		}
		return
	}
	m.Authoritative = depth == 0
	rrs := s.rrs[name]
	var cname *dns.CNAME
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			cname = c
		}
	}
	if cname != nil && qtype != dns.TypeCNAME {
		m.Answer = append(m.Answer, dns.Copy(cname))
		if s.ChaseCNAME && depth < 8 {
			s.answerLocked(m, cname.Target, qtype, depth+1)
		}
		return
	}
	found := false
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
			found = true
		}
	}
	if found {
		return
	}
	if qtype == dns.TypeA && !s.hasSubtreeLocked(name) {
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
		return
	}
	if len(rrs) == 0 && !s.hasSubtreeLocked(name) && depth == 0 {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range s.rrs[zone] {
		if rr.Header().Rrtype == dns.TypeSOA {
			m.Ns = append(m.Ns, dns.Copy(rr))
		}
	}
}

// hasSubtreeLocked reports whether any record lives at or below name.
func (s *Server) hasSubtreeLocked(name string) bool {
	for n, rrs := range s.rrs {
		if len(rrs) > 0 && dns.IsSubDomain(name, n) {
			return true
		}
	}
	return false
}

// update applies an RFC 2136 update: §2.5.1 add, §2.5.2 delete an RRset,
// §2.5.3 delete all RRsets of a name, §2.5.4 delete one RR.
func (s *Server) update(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	reply := func(rcode int) {
		m.Rcode = rcode
		if t := req.IsTsig(); t != nil && w.TsigStatus() == nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
	}
	t := req.IsTsig()
	if t == nil || w.TsigStatus() != nil {
		// RFC 8945 §5.2: a bad signature gets NOTAUTH.
		m.Rcode = dns.RcodeNotAuth
		_ = w.WriteMsg(m)
		return
	}
	if len(req.Question) != 1 {
		reply(dns.RcodeFormatError)
		return
	}
	zone := canon(req.Question[0].Name)
	s.mu.Lock()
	if !s.zones[zone] {
		s.mu.Unlock()
		reply(dns.RcodeNotAuth)
		return
	}
	for _, rr := range req.Ns {
		if !dns.IsSubDomain(zone, canon(rr.Header().Name)) {
			s.mu.Unlock()
			reply(dns.RcodeNotZone)
			return
		}
	}
	ops := slices.Clone(req.Ns)
	s.applyLocked(ops)
	s.updates++
	secs := slices.Clone(s.secondaries)
	s.mu.Unlock()
	for _, sec := range secs {
		time.AfterFunc(sec.lag, func() {
			sec.s.mu.Lock()
			defer sec.s.mu.Unlock()
			sec.s.applyLocked(ops)
		})
	}
	reply(dns.RcodeSuccess)
}

func (s *Server) applyLocked(ops []dns.RR) {
	for _, op := range ops {
		h := op.Header()
		name := canon(h.Name)
		switch h.Class {
		case dns.ClassINET:
			c := dns.Copy(op)
			c.Header().Name = name
			s.addLocked(c)
		case dns.ClassANY:
			s.rrs[name] = slices.DeleteFunc(s.rrs[name], func(rr dns.RR) bool {
				return h.Rrtype == dns.TypeANY || rr.Header().Rrtype == h.Rrtype
			})
		case dns.ClassNONE:
			c := dns.Copy(op)
			c.Header().Class = dns.ClassINET
			c.Header().Name = name
			s.rrs[name] = slices.DeleteFunc(s.rrs[name], func(rr dns.RR) bool { return dns.IsDuplicate(rr, c) })
		}
	}
}
