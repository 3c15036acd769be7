package preflight

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
)

// TestCheckCAA runs checkCAA against a real DNS server: the relevant CAA
// set is the closest one climbing towards the root (RFC 8659 §3), a
// wildcard is governed by issuewild when present (§4.3), and a set that
// does not name the CA fails with the record to add.
func TestCheckCAA(t *testing.T) {
	srv, err := dnstest.Start("127.0.0.1", "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.AddZone("caa.test", "ns1.caa.test")
	srv.AddZone("nocaa.test", "ns1.caa.test")
	srv.Add("ns1.caa.test. 60 IN A 127.0.0.1",
		`caa.test. 60 IN CAA 0 issue "ca.example; account=1"`,
		`caa.test. 60 IN CAA 0 issuewild "wild-ca.example"`,
		`sub.caa.test. 60 IN CAA 0 issue "other.example"`)
	r := &dns01.Resolver{Nameservers: []string{srv.Addr()}}
	dnsName := func(v string) certfleet.Identifier {
		return certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: v}
	}
	for _, tc := range []struct {
		name       string
		id         string
		identities []string
		want       string // in the verdict, or in the error when fail, or the warning when warn
		fail       bool
		warn       bool
	}{
		{"set at the zone, parameters ignored", "www.caa.test", []string{"ca.example"}, "CAA issue at caa.test. permits ca.example", false, false},
		{"closest set wins", "a.sub.caa.test", []string{"ca.example"}, `CAA issue records at sub.caa.test. permit only ["other.example"]`, true, false},
		{"wildcard uses issuewild", "*.caa.test", []string{"wild-ca.example"}, "CAA issuewild at caa.test. permits wild-ca.example", false, false},
		{"wildcard refused by issuewild", "*.caa.test", []string{"ca.example"}, `permit only ["wild-ca.example"]`, true, false},
		{"identity unknown", "www.caa.test", nil, "set caa_identities", true, false},
		// Issue 15, finding 5: the climb stops where this server refuses
		// (above its zones): not "ok", a warning saying what was not
		// checked.
		{"climb cut short", "www.nocaa.test", []string{"ca.example"}, "CAA not fully checked: no CAA records up to nocaa.test.", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warn, err := checkCAA(t.Context(), r, dnsName(tc.id), tc.identities)
			if tc.warn {
				if err != nil || got != "" || !strings.Contains(warn, tc.want) {
					t.Fatalf("checkCAA(%s) = %q, warning %q, %v; want only the warning %q", tc.id, got, warn, err, tc.want)
				}
				return
			}
			if warn != "" {
				t.Errorf("checkCAA(%s) warns %q", tc.id, warn)
			}
			if tc.fail {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("checkCAA(%s) = %q, %v; want an error with %q", tc.id, got, err, tc.want)
				}
				return
			}
			if err != nil || !strings.Contains(got, tc.want) {
				t.Fatalf("checkCAA(%s) = %q, %v; want %q", tc.id, got, err, tc.want)
			}
		})
	}
}
