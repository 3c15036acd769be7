package rfc2136_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/bindtest"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/rfc2136"
)

// TestBINDDiagnosis (issue 15, finding 4): against real BIND 9, each way
// an update fails is told apart, with its fix. A server not authoritative
// for the zone was reported as a rejected key ("check key_name, algorithm
// and secret"), sending the admin after a secret that was right.
func TestBINDDiagnosis(t *testing.T) {
	primary := bindtest.Start(t, bindtest.Options{Zone: "example.test"})
	// A second BIND that knows the same key name but serves no zone.
	other := bindtest.Start(t, bindtest.Options{})
	locked := bindtest.Start(t, bindtest.Options{Zone: "example.test", Grant: "grant certfleet name nothing.example.test. TXT;"})
	rec := dns01.Record{Zone: "example.test.", FQDN: "_acme-challenge.www.example.test.", Value: "token"}
	cases := []struct {
		name string
		p    rfc2136.Provider
		want []string // in the error
		not  []string
	}{
		{"ok, lego's algorithm spelling", rfc2136.Provider{Server: primary.Addr, KeyName: "certfleet", Algorithm: "hmac-sha256.", Secret: primary.Secret}, nil, nil},
		{"not authoritative", rfc2136.Provider{Server: other.Addr, KeyName: "certfleet", Secret: other.Secret},
			[]string{"NOTAUTH", "not authoritative for zone example.test.", "set server"}, []string{"secret"}},
		{"wrong secret", rfc2136.Provider{Server: primary.Addr, KeyName: "certfleet", Secret: other.Secret},
			[]string{"BADSIG", "secret or the algorithm differs"}, []string{"not authoritative"}},
		{"wrong key name", rfc2136.Provider{Server: primary.Addr, KeyName: "certfleet-typo", Secret: primary.Secret},
			[]string{"BADKEY", "does not know a TSIG key named certfleet-typo", "key_name"}, []string{"not authoritative"}},
		{"clock skew", rfc2136.Provider{Server: primary.Addr, KeyName: "certfleet", Secret: primary.Secret,
			Now: func() time.Time { return time.Now().Add(-20 * time.Minute) }},
			[]string{"BADTIME", "clock", "NTP"}, []string{"not authoritative", "secret or"}},
		{"update-policy refuses", rfc2136.Provider{Server: locked.Addr, KeyName: "certfleet", Secret: locked.Secret},
			[]string{"REFUSED", "update-policy"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Present(t.Context(), rec)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Present: %v", err)
				}
				if err := tc.p.CleanUp(t.Context(), rec); err != nil {
					t.Fatalf("CleanUp: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Present succeeded")
			}
			t.Log(err)
			// Issue 15, finding 5: the audit files these under the
			// DNS settings, not "internal".
			if got := certfleet.FailureReason(fmt.Errorf("present dns-01 challenge: %w", err)); got != certfleet.EDNSCONFIG {
				t.Errorf("audit reason %q, want %q", got, certfleet.EDNSCONFIG)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error wrongly says %q", n)
				}
			}
		})
	}
}

// TestBINDZoneCutNotFound (issue 15, finding 4): a resolver that refuses
// the SOA walk (here a BIND without recursion, asked about a zone it does
// not serve) is said to, instead of "is the domain registered?".
func TestBINDZoneCutNotFound(t *testing.T) {
	other := bindtest.Start(t, bindtest.Options{})
	r := &dns01.Resolver{Nameservers: []string{other.Addr}}
	_, _, err := r.FindZone(t.Context(), "_acme-challenge.www.example.org")
	if err == nil || !strings.Contains(err.Error(), "zone cut not found") || !strings.Contains(err.Error(), "REFUSED") ||
		strings.Contains(err.Error(), "registered") {
		t.Fatalf("FindZone through a refusing resolver: %v; want the zone cut not found, saying REFUSED", err)
	}
	t.Log(err)
}
