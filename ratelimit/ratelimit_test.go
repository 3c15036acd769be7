package ratelimit_test

import (
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/ratelimit"
)

func TestRegisteredDomain(t *testing.T) {
	for _, tc := range []struct {
		id   certfleet.Identifier
		want string
	}{
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "www.example.com"}, "example.com"},
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "a.b.c.example.com"}, "example.com"},
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "new.blog.example.co.uk"}, "example.co.uk"},
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "*.example.net"}, "example.net"},
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "example.org"}, "example.org"},
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "WWW.Example.COM"}, "example.com"},
		// A public suffix (a private PSL entry here) counts as itself.
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "foo.github.io"}, "foo.github.io"},
		{certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "co.uk"}, "co.uk"},
		{certfleet.Identifier{Type: certfleet.IdentifierIP, Value: "192.0.2.10"}, "192.0.2.10"},
		{certfleet.Identifier{Type: certfleet.IdentifierIP, Value: "2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"},
		{certfleet.Identifier{Type: certfleet.IdentifierIP, Value: "2001:db8:1:2::9"}, "2001:db8:1:2::/64"},
	} {
		if got := ratelimit.RegisteredDomain(tc.id); got != tc.want {
			t.Errorf("RegisteredDomain(%s) = %q, want %q", tc.id.Value, got, tc.want)
		}
	}
	ids, _ := certfleet.ParseIdentifiers([]string{"www.example.com", "example.com", "api.example.org", "*.example.com"})
	if got := ratelimit.RegisteredDomains(ids); !slices.Equal(got, []string{"example.com", "example.org"}) {
		t.Errorf("RegisteredDomains = %v: want each domain once", got)
	}
}

func TestNameSetKey(t *testing.T) {
	a, _ := certfleet.ParseIdentifiers([]string{"www.example.com", "example.com"})
	b := []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: "EXAMPLE.com"}, {Type: certfleet.IdentifierDNS, Value: "www.example.com"}}
	c, _ := certfleet.ParseIdentifiers([]string{"www.example.com"})
	if ratelimit.NameSetKey(a) != ratelimit.NameSetKey(b) {
		t.Error("the same names in another order and case are another set")
	}
	if ratelimit.NameSetKey(a) == ratelimit.NameSetKey(c) {
		t.Error("a subset counts as the same set")
	}
}

func TestRequest(t *testing.T) {
	ids, _ := certfleet.ParseIdentifiers([]string{"www.example.com", "example.com", "example.org"})
	o := certfleet.OrderIntent{Account: "default", Identifiers: ids}
	buckets := func(ls []certfleet.BudgetLimit) []string {
		var out []string
		for _, l := range ls {
			kind := l.Bucket
			if l.CheckOnly {
				kind += " (check)"
			}
			if l.Refundable {
				kind += " (refundable)"
			}
			out = append(out, kind)
		}
		return out
	}
	le := ratelimit.LetsEncrypt()
	got := buckets(ratelimit.Request(le, o))
	want := []string{"orders|default", "domain|example.com (refundable)", "domain|example.org (refundable)",
		"names|" + ratelimit.NameSetKey(ids) + " (refundable)",
		"failed|default|example.com (check)", "failed|default|example.org (check)", "failed|default|www.example.com (check)"}
	if !slices.Equal(got, want) {
		t.Errorf("new order:\n got %v\nwant %v", got, want)
	}
	// A renewal with "replaces" is exempt from the issuance limits; its
	// names' failed validations still count.
	o.Renewal = true
	if got := buckets(ratelimit.Request(le, o)); !slices.Equal(got, want[4:]) {
		t.Errorf("renewal:\n got %v\nwant %v", got, want[4:])
	}
	if got := ratelimit.Request(ratelimit.Limits{}, o); len(got) != 0 {
		t.Errorf("no limits: %v", got)
	}
}

func TestDefaults(t *testing.T) {
	le := ratelimit.LetsEncrypt()
	if le.NewOrdersPerAccount != (ratelimit.Limit{Count: 300, Window: 3 * time.Hour}) ||
		le.CertificatesPerDomain != (ratelimit.Limit{Count: 50, Window: 7 * 24 * time.Hour}) ||
		le.CertificatesPerNameSet != (ratelimit.Limit{Count: 5, Window: 7 * 24 * time.Hour}) ||
		le.FailedValidationsPerName != (ratelimit.Limit{Count: 5, Window: time.Hour}) {
		t.Errorf("LetsEncrypt() = %+v", le)
	}
	for dir, want := range map[string]bool{
		ratelimit.LetsEncryptProduction:           true,
		ratelimit.LetsEncryptStaging:              true,
		"https://acme.zerossl.com/v2/DV90":        false,
		"https://127.0.0.1:14000/dir":             false,
		"https://ca.internal/acme/acme/directory": false,
	} {
		if got := !ratelimit.Defaults(dir).IsZero(); got != want {
			t.Errorf("Defaults(%s) limited = %v, want %v", dir, got, want)
		}
	}
	if got := ratelimit.LetsEncrypt().CertificatesPerDomain.String(); got != "50/7d" {
		t.Errorf("String = %q", got)
	}
}
