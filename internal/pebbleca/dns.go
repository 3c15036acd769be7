package pebbleca

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

// DNS is a tiny authoritative-for-everything DNS server on loopback, the
// resolver Pebble's VA asks (its customResolverAddr). Every name has the
// A record 127.0.0.1 and no AAAA record, so an http-01 or tls-alpn-01
// validation of any hostname reaches a responder on 127.0.0.1. TXT records
// are whatever SetTXT put there (for dns-01).
//
// There is deliberately no AAAA record: Pebble's VA dials the first address
// it resolves and asks for AAAA before A, so an ::1 answer would send it to
// an address our responders do not listen on.
type DNS struct {
	addr string
	tcp  *dns.Server
	udp  *dns.Server

	mu  sync.Mutex          // guards txt
	txt map[string][]string // fully-qualified lower-case name → values
}

// startDNS listens on 127.0.0.1 with TCP (what Pebble's VA uses) and UDP on
// the same port.
func startDNS() (*DNS, error) {
	d := &DNS{txt: make(map[string][]string)}
	var lastErr error
	// The TCP port the kernel picks may be taken for UDP; try a few times.
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("dns: listen tcp: %w", err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			lastErr = err
			continue
		}
		d.addr = ln.Addr().String()
		// Generous timeouts: on a loaded test machine the VA's query can
		// take more than the default 2 s to arrive.
		d.tcp = &dns.Server{Listener: ln, Handler: d, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		d.udp = &dns.Server{PacketConn: pc, Handler: d, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		started := make(chan struct{}, 2)
		d.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		d.udp.NotifyStartedFunc = func() { started <- struct{}{} }
		go d.tcp.ActivateAndServe() //nolint:errcheck // ends with Shutdown
		go d.udp.ActivateAndServe() //nolint:errcheck // ends with Shutdown
		<-started
		<-started
		return d, nil
	}
	return nil, fmt.Errorf("dns: listen udp next to tcp: %w", lastErr)
}

// Addr returns the server's address ("127.0.0.1:port"), TCP and UDP.
func (d *DNS) Addr() string { return d.addr }

// SetTXT sets the TXT values of name (replacing earlier ones). Several
// values under one name are normal: a wildcard and its apex in one order
// put two dns-01 values under the same _acme-challenge name.
func (d *DNS) SetTXT(name string, values ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[fqdn(name)] = slices.Clone(values)
}

// AddTXT adds one TXT value to name, keeping the ones already there.
func (d *DNS) AddTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := fqdn(name)
	d.txt[n] = append(d.txt[n], value)
}

// ClearTXT removes every TXT value of name.
func (d *DNS) ClearTXT(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.txt, fqdn(name))
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// ServeDNS implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			d.mu.Lock()
			values := slices.Clone(d.txt[strings.ToLower(q.Name)])
			d.mu.Unlock()
			for _, v := range values {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: splitTXT(v)})
			}
		case dns.TypeCAA:
			// No CAA records: any CA may issue (RFC 8659 §3).
		}
	}
	_ = w.WriteMsg(m)
}

// splitTXT splits a value into RFC 1035 character-strings of at most 255
// octets; the VA joins them back.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// close stops both servers.
func (d *DNS) close() error {
	return errors.Join(d.tcp.Shutdown(), d.udp.Shutdown())
}
