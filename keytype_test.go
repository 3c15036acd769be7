package certfleet_test

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
)

func TestKeyTypesRoundTrip(t *testing.T) {
	for _, kt := range []certfleet.KeyType{certfleet.RSA2048, certfleet.ECDSAP256, certfleet.ECDSAP384} {
		t.Run(string(kt), func(t *testing.T) {
			key, err := certfleet.GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := certfleet.KeyTypeOf(key.Public())
			if err != nil || got != kt {
				t.Fatalf("KeyTypeOf = %v, %v; want %v", got, err, kt)
			}
			pemBytes, err := certfleet.MarshalPrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			back, err := certfleet.ParsePrivateKey(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			if kt2, _ := certfleet.KeyTypeOf(back.Public()); kt2 != kt {
				t.Fatalf("parsed key type %v, want %v", kt2, kt)
			}
		})
	}
}

func TestParseKeyType(t *testing.T) {
	if kt, err := certfleet.ParseKeyType(" ECDSA-P384 "); err != nil || kt != certfleet.ECDSAP384 {
		t.Fatalf("got %v, %v", kt, err)
	}
	_, err := certfleet.ParseKeyType("ed25519")
	if err == nil || !strings.Contains(err.Error(), `unknown key type "ed25519"`) || !strings.Contains(err.Error(), "rsa2048") {
		t.Fatalf("err = %v", err)
	}
}

func TestParsePrivateKeyErrorsHideKey(t *testing.T) {
	bad := []byte("-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n")
	_, err := certfleet.ParsePrivateKey(bad)
	if err == nil || strings.Contains(err.Error(), "U0VDUkVU") {
		t.Fatalf("err = %v: must fail without echoing key material", err)
	}
}

func TestSpecValidate(t *testing.T) {
	ids := func(v ...string) []certfleet.Identifier {
		out, err := certfleet.ParseIdentifiers(v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	base := certfleet.CertificateSpec{Name: "www", Identifiers: ids("example.org"), KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01}
	tests := []struct {
		name    string
		mutate  func(*certfleet.CertificateSpec)
		wantErr string
	}{
		{name: "ok", mutate: func(*certfleet.CertificateSpec) {}},
		{name: "dual ok", mutate: func(s *certfleet.CertificateSpec) {
			s.KeyTypes = []certfleet.KeyType{certfleet.RSA2048, certfleet.ECDSAP256}
		}},
		{name: "dual same family", mutate: func(s *certfleet.CertificateSpec) {
			s.KeyTypes = []certfleet.KeyType{certfleet.RSA2048, certfleet.RSA4096}
		}, wantErr: "one RSA and one ECDSA"},
		{name: "wildcard http-01", mutate: func(s *certfleet.CertificateSpec) { s.Identifiers = ids("*.example.org") }, wantErr: "only be validated with dns-01"},
		{name: "wildcard dns-01", mutate: func(s *certfleet.CertificateSpec) {
			s.Identifiers = ids("*.example.org")
			s.Challenge = certfleet.ChallengeDNS01
		}},
		{name: "ip dns-01", mutate: func(s *certfleet.CertificateSpec) {
			s.Identifiers = ids("192.0.2.1")
			s.Challenge = certfleet.ChallengeDNS01
		}, wantErr: "cannot be validated with dns-01"},
		{name: "bad name", mutate: func(s *certfleet.CertificateSpec) { s.Name = "../etc" }, wantErr: "certificate name"},
		{name: "no key types", mutate: func(s *certfleet.CertificateSpec) { s.KeyTypes = nil }, wantErr: "key type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mutate(&s)
			err := s.Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	// Revision ignores identifier order and challenge, but not names or key type.
	a, b := base, base
	a.Identifiers, b.Identifiers = ids("a.example", "b.example"), ids("b.example", "a.example")
	b.Challenge = certfleet.ChallengeTLSALPN01
	if a.Revision(certfleet.ECDSAP256) != b.Revision(certfleet.ECDSAP256) {
		t.Error("revision depends on identifier order or challenge")
	}
	if a.Revision(certfleet.ECDSAP256) == a.Revision(certfleet.RSA2048) {
		t.Error("revision ignores key type")
	}
	b.Identifiers = ids("a.example", "c.example")
	if a.Revision(certfleet.ECDSAP256) == b.Revision(certfleet.ECDSAP256) {
		t.Error("revision ignores identifiers")
	}
}

func TestCheckSync(t *testing.T) {
	id, _ := certfleet.ParseIdentifier("a.example.org")
	ok := certfleet.CertificateSpec{Name: "a", Identifiers: []certfleet.Identifier{id}, KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}, Challenge: certfleet.ChallengeHTTP01}
	got, err := certfleet.CheckSync(certfleet.SourceConfig, []certfleet.CertificateSpec{ok})
	if err != nil || len(got) != 1 || got[0].Source != certfleet.SourceConfig {
		t.Fatalf("CheckSync = %+v, %v; want the spec with its source set", got, err)
	}
	for name, tc := range map[string]struct {
		source string
		specs  []certfleet.CertificateSpec
		want   string
	}{
		"no source": {"", []certfleet.CertificateSpec{ok}, "source required"},
		"twice":     {certfleet.SourceAPI, []certfleet.CertificateSpec{ok, ok}, `"a" is declared twice`},
		"invalid":   {certfleet.SourceAPI, []certfleet.CertificateSpec{{Name: "../x"}}, "certificate name"},
	} {
		_, err := certfleet.CheckSync(tc.source, tc.specs)
		if certfleet.ErrorCode(err) != certfleet.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want EINVALID containing %q", name, err, tc.want)
		}
	}
}
