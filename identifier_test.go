package certfleet_test

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
)

func TestParseIdentifier(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    certfleet.Identifier
		wantErr string
	}{
		{name: "simple", in: "Example.ORG", want: dns("example.org")},
		{name: "trailing dot", in: "www.example.org.", want: dns("www.example.org")},
		{name: "wildcard", in: "*.example.org", want: dns("*.example.org")},
		{name: "idn", in: "bücher.example", want: dns("xn--bcher-kva.example")},
		{name: "idn wildcard", in: "*.bücher.example", want: dns("*.xn--bcher-kva.example")},
		{name: "ipv4", in: "192.0.2.10", want: ip("192.0.2.10")},
		{name: "ipv6 canonical", in: "2001:DB8:0:0::1", want: ip("2001:db8::1")},
		{name: "ipv6 brackets", in: "[::1]", want: ip("::1")},
		{name: "v4-mapped v6", in: "::ffff:192.0.2.1", want: ip("192.0.2.1")},
		{name: "digit label", in: "1password.example", want: dns("1password.example")},
		{name: "empty", in: "  ", wantErr: "empty identifier"},
		{name: "space", in: "exa mple.org", wantErr: "character ' '"},
		{name: "underscore", in: "_acme.example.org", wantErr: "character '_'"},
		{name: "single label", in: "localhost", wantErr: "at least two labels"},
		{name: "wildcard in middle", in: "www.*.example.org", wantErr: "whole leftmost label"},
		{name: "partial wildcard", in: "w*.example.org", wantErr: "whole leftmost label"},
		{name: "double wildcard", in: "*.*.example.org", wantErr: "whole leftmost label"},
		{name: "wildcard of tld", in: "*.org", wantErr: "at least two labels"},
		{name: "leading hyphen", in: "-bad.example.org", wantErr: "hyphen"},
		{name: "empty label", in: "a..example.org", wantErr: "empty label"},
		{name: "long label", in: strings.Repeat("a", 64) + ".example.org", wantErr: "limit is 63"},
		{name: "long name", in: strings.Repeat("abcdefghi.", 26) + "org", wantErr: "limit is 253"},
		{name: "numeric tld", in: "example.123", wantErr: "all digits"},
		{name: "invalid utf-8", in: "\x8c.example", wantErr: "not valid UTF-8"},
		{name: "unbalanced bracket", in: "[192.0.2.1", wantErr: "character '['"},
		{name: "ip zone", in: "fe80::1%eth0", wantErr: "zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := certfleet.ParseIdentifier(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseIdentifier(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIdentifier(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseIdentifier(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseIdentifiers(t *testing.T) {
	if _, err := certfleet.ParseIdentifiers([]string{"a.example", "A.example."}); err == nil || !strings.Contains(err.Error(), `"A.example." is the same name as "a.example"`) {
		t.Fatalf("duplicate after normalisation: err = %v", err)
	}
	if _, err := certfleet.ParseIdentifiers([]string{"a.example", "a.example"}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("exact duplicate: err = %v", err)
	}
	many := make([]string, certfleet.MaxIdentifiers+1)
	for i := range many {
		many[i] = "n" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + "-" + itoa(i) + ".example"
	}
	if _, err := certfleet.ParseIdentifiers(many); err == nil || !strings.Contains(err.Error(), "at most 100") {
		t.Fatalf("101 identifiers: err = %v", err)
	}
	ids, err := certfleet.ParseIdentifiers(many[:certfleet.MaxIdentifiers])
	if err != nil || len(ids) != certfleet.MaxIdentifiers {
		t.Fatalf("100 identifiers: got %d, %v", len(ids), err)
	}
	if _, err := certfleet.ParseIdentifiers(nil); err == nil {
		t.Fatal("empty list accepted")
	}
}

func FuzzParseIdentifier(f *testing.F) {
	for _, s := range []string{"example.org", "*.example.org", "bücher.example", "192.0.2.1", "::1", "a..b", "xn--bcher-kva.example", "*.", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := certfleet.ParseIdentifier(s)
		if err != nil {
			return
		}
		// Normalised output must parse to itself (idempotence), and be ASCII.
		again, err := certfleet.ParseIdentifier(id.Value)
		if err != nil {
			t.Fatalf("normalised %q (from %q) does not parse: %v", id.Value, s, err)
		}
		if again != id {
			t.Fatalf("not idempotent: %q -> %+v -> %+v", s, id, again)
		}
		for _, r := range id.Value {
			if r > 127 {
				t.Fatalf("non-ASCII normalised value %q from %q", id.Value, s)
			}
		}
	})
}

func dns(v string) certfleet.Identifier {
	return certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: v}
}
func ip(v string) certfleet.Identifier {
	return certfleet.Identifier{Type: certfleet.IdentifierIP, Value: v}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
