package certfleet_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/certfleet/certfleet"
)

// TestTokenMayRead is the authorization rule for reads (issue 12): every
// identifier of the certificate within the token's patterns, and a
// tenant's token only for its tenant's certificates.
func TestTokenMayRead(t *testing.T) {
	spec := func(tenant string, names ...string) certfleet.CertificateSpec {
		sp := certfleet.CertificateSpec{Tenant: tenant}
		for _, n := range names {
			sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: n})
		}
		return sp
	}
	for _, tc := range []struct {
		names  []string
		tenant string
		sp     certfleet.CertificateSpec
		want   bool
	}{
		{[]string{"*"}, "", spec("", "a.example.org", "other.net"), true},
		{[]string{"*.example.org"}, "", spec("", "a.example.org", "b.c.example.org"), true},
		// One name outside the patterns hides the whole certificate: its
		// other names are not the token's to see.
		{[]string{"*.example.org"}, "", spec("", "a.example.org", "other.net"), false},
		{[]string{"*.example.org", "other.net"}, "", spec("", "a.example.org", "other.net"), true},
		{[]string{"a.example.org"}, "", spec("", "b.example.org"), false},
		{nil, "", spec("", "a.example.org"), false},
		// Tenants: a tenant's token sees its tenant's certificates only,
		// even within its patterns; an operator's token sees any tenant's
		// within its patterns.
		{[]string{"*.example.org"}, "acme", spec("acme", "a.example.org"), true},
		{[]string{"*.example.org"}, "acme", spec("other", "a.example.org"), false},
		{[]string{"*.example.org"}, "acme", spec("", "a.example.org"), false},
		{[]string{"*.example.org"}, "", spec("acme", "a.example.org"), true},
		{[]string{"*"}, "", spec("acme"), false}, // no identifiers: nothing to read
	} {
		tok := certfleet.Token{Names: tc.names, Tenant: tc.tenant}
		if got := tok.MayRead(tc.sp); got != tc.want {
			t.Errorf("token %v of tenant %q reads %v of tenant %q: %v, want %v", tc.names, tc.tenant,
				certfleet.IdentifierValues(tc.sp.Identifiers), tc.sp.Tenant, got, tc.want)
		}
	}
}

// TestRevisionOfTenant: a certificate moved to another tenant is made
// anew (a new key), while specs without a tenant keep their revisions.
func TestRevisionOfTenant(t *testing.T) {
	sp := certfleet.CertificateSpec{Name: "www", Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: "www.example.org"}}}
	op := sp.Revision(certfleet.ECDSAP256)
	// The revision as it was before tenants: stored jobs compare with it.
	sum := sha256.Sum256([]byte("dns:www.example.org\nkey=ecdsa-p256\nprofile=\naccount=default\n"))
	if want := hex.EncodeToString(sum[:])[:16]; op != want {
		t.Fatalf("revision of a spec without a tenant %s, want %s as before", op, want)
	}
	a, b := sp, sp
	a.Tenant, b.Tenant = "a", "b"
	if ra, rb := a.Revision(certfleet.ECDSAP256), b.Revision(certfleet.ECDSAP256); ra == rb || ra == op || rb == op {
		t.Errorf("revisions of tenants a %s, b %s, operator %s: want all different", ra, rb, op)
	}
}
