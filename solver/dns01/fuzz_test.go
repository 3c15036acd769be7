package dns01

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswers feeds arbitrary DNS messages (wire format) to the functions
// that read the answers the SOA walk, the CNAME walk, the NS lookup and the
// propagation check rely on: none may panic, and what they return must be
// consistent with the question.
func FuzzAnswers(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "_acme-challenge.www.example.org.")
	}
	m := new(dns.Msg)
	m.SetQuestion("_acme-challenge.www.example.org.", dns.TypeSOA)
	m.Rcode = dns.RcodeNameError
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.org.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns1.example.org.", Mbox: "h.example.org."}}
	seed(m)
	m = new(dns.Msg)
	m.SetQuestion("_acme-challenge.www.example.org.", dns.TypeCNAME)
	m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "_acme-challenge.www.example.org.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "www.acme.example.net."}}
	seed(m)
	m = new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeNS)
	m.Answer = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: "example.org.", Rrtype: dns.TypeNS, Class: dns.ClassINET}, Ns: "NS1.example.org."},
		&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.www.example.org.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"abc", "def"}}}
	seed(m)

	f.Fuzz(func(t *testing.T, wire []byte, name string) {
		resp := new(dns.Msg)
		if err := resp.Unpack(wire); err != nil {
			return
		}
		if _, ok := dns.IsDomainName(name); !ok {
			return
		}
		name = canonical(name)
		if zone, soa, ok := zoneFromAnswer(resp, name, name); ok {
			if soa == nil || !dns.IsSubDomain(zone, name) {
				t.Fatalf("zone %q for %q (soa %v)", zone, name, soa)
			}
		}
		if p := parent(name); name != "." && !dns.IsSubDomain(p, name) {
			t.Fatalf("parent(%q) = %q", name, p)
		}
		if target, ok := cnameTarget(resp, name); ok && (target != canonical(target) || target == "") {
			t.Fatalf("CNAME target %q not canonical", target)
		}
		names := nsNames(resp, name)
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] || n != canonical(n) {
				t.Fatalf("nsNames = %q: duplicate or not canonical", names)
			}
			seen[n] = true
		}
		if vals, err := txtValues(resp, name); err == nil {
			n := 0
			for _, rr := range resp.Answer {
				if t, ok := rr.(*dns.TXT); ok && canonical(t.Hdr.Name) == name {
					n++
				}
			}
			if len(vals) != n {
				t.Fatalf("txtValues returned %d values for %d records", len(vals), n)
			}
			for _, v := range vals {
				_ = strings.Clone(v)
			}
		}
	})
}
