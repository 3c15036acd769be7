package config

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
)

func TestWebroots(t *testing.T) {
	cfg := mustParse(t, ca+"[webroots]\nsite = \"/var/www/site\"\nrel = \"www/rel\"\n")
	if cfg.Webroots["site"] != "/var/www/site" || cfg.Webroots["rel"] != "/etc/certfleet/www/rel" || len(cfg.Webroots) != 2 {
		t.Errorf("Webroots = %v", cfg.Webroots)
	}
	for src, want := range map[string]string{
		"[webroots]\n\"a b\" = \"/x\"\n": "web root name",
		"[webroots]\nsite = \"\"\n":      "give the directory",
		"[webroots]\nsite = 3\n":         "must be a string",
	} {
		ps := mustProblems(t, ca+src)
		if !strings.Contains(ps[0].Message, want) {
			t.Errorf("%q: %v, want %q", src, ps, want)
		}
	}
}

// TestRespondsTo is issue 12's rule for the responders: with the API
// served, an address set in the file starts the responder whatever the
// certificates (an API-only set-up); otherwise it starts for the file's
// certificates that use it; "" never.
func TestRespondsTo(t *testing.T) {
	http01, alpn := certfleet.ChallengeHTTP01, certfleet.ChallengeTLSALPN01
	const api = "[api]\nlisten = \"127.0.0.1:8555\"\n"
	for _, tc := range []struct {
		name       string
		src        string
		http, alpn bool
	}{
		{"no certificates, defaults", ca + api, false, false},
		{"no certificates, set, API", ca + api + "[http01]\nlisten = \":8402\"\n[tlsalpn01]\nlisten = \":8443\"\n", true, true},
		{"no certificates, set, no API", ca + "[http01]\nlisten = \":8402\"\n[tlsalpn01]\nlisten = \":8443\"\n", false, false},
		{"set to the default address, API", ca + api + "[http01]\nlisten = \":80\"\n", true, false},
		{"certificate, defaults", ca + "[[certificate]]\nidentifiers = [\"a.example.org\"]\n", true, false},
		{"certificate, set, no API", ca + "[tlsalpn01]\nlisten = \":443\"\n[[certificate]]\nidentifiers = [\"a.example.org\"]\n", true, false},
		{"certificate, disabled", ca + api + "[http01]\nlisten = \"\"\n[[certificate]]\nidentifiers = [\"a.example.org\"]\n", false, false},
		{"tls-alpn-01 certificate", ca + "[[certificate]]\nidentifiers = [\"a.example.org\"]\nchallenge = \"tls-alpn-01\"\n", false, true},
	} {
		cfg := mustParse(t, tc.src)
		if got := cfg.RespondsTo(http01); got != tc.http {
			t.Errorf("%s: http-01 responder %v, want %v", tc.name, got, tc.http)
		}
		if got := cfg.RespondsTo(alpn); got != tc.alpn {
			t.Errorf("%s: tls-alpn-01 responder %v, want %v", tc.name, got, tc.alpn)
		}
	}
}
