package certfleet_test

import (
	"testing"

	"github.com/certfleet/certfleet"
)

func TestTokenCoversSpec(t *testing.T) {
	spec := func(names ...string) certfleet.CertificateSpec {
		var sp certfleet.CertificateSpec
		for _, n := range names {
			sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: n})
		}
		return sp
	}
	for _, tc := range []struct {
		names []string
		sp    certfleet.CertificateSpec
		want  bool
	}{
		{[]string{"*"}, spec("a.example.org", "other.net"), true},
		{[]string{"*.example.org"}, spec("a.example.org", "b.c.example.org"), true},
		// One name outside the patterns hides the whole certificate: its
		// other names are not the token's to see.
		{[]string{"*.example.org"}, spec("a.example.org", "other.net"), false},
		{[]string{"*.example.org", "other.net"}, spec("a.example.org", "other.net"), true},
		{[]string{"a.example.org"}, spec("b.example.org"), false},
		{nil, spec("a.example.org"), false},
	} {
		tok := certfleet.Token{Names: tc.names}
		if got := tok.CoversSpec(tc.sp); got != tc.want {
			t.Errorf("token %v covers %v: %v, want %v", tc.names, certfleet.IdentifierValues(tc.sp.Identifiers), got, tc.want)
		}
	}
}
