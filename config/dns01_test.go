package config

import (
	"strings"
	"testing"
	"time"
)

const tsigSecret = "c2VjcmV0LXRzaWcta2V5LW9mLWNlcnRmbGVldC0wMQ=="

func TestParseDNS01(t *testing.T) {
	cfg := mustParse(t, ca+`
[dns01]
propagation_timeout = "5m"
nameservers = ["127.0.0.1:5353", "192.0.2.1"]
authoritative_port = 5300
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
secret = "`+tsigSecret+`"
[dns01.providers.hook]
type = "exec"
program = "hooks/dns"
timeout = "10s"

[defaults]
dns_provider = "bind"

[[certificate]]
identifiers = ["*.example.org", "example.org"]
challenge = "dns-01"

[[certificate]]
identifiers = ["b.example.net"]
challenge = "dns-01"
dns_provider = "hook"

[[certificate]]
identifiers = ["c.example.net"]
`)
	if cfg.DNS01.PropagationTimeout != 5*time.Minute || cfg.DNS01.AuthoritativePort != 5300 || len(cfg.DNS01.Nameservers) != 2 {
		t.Errorf("DNS01 = %+v", cfg.DNS01)
	}
	bind := cfg.DNS01.Providers["bind"]
	if bind.Type != "rfc2136" || bind.Algorithm != "hmac-sha256" || bind.Secret != tsigSecret || bind.KeyName != "certfleet" {
		t.Errorf("bind = %+v", bind)
	}
	if hook := cfg.DNS01.Providers["hook"]; hook.Program != "/etc/certfleet/hooks/dns" || hook.Timeout != 10*time.Second {
		t.Errorf("hook = %+v", hook)
	}
	got := []string{cfg.Certificates[0].DNSProvider, cfg.Certificates[1].DNSProvider, cfg.Certificates[2].DNSProvider}
	if strings.Join(got, ",") != "bind,hook," {
		t.Errorf("providers = %q, want bind, hook and none", got)
	}
	routes := cfg.DNSRoutes()
	if routes["example.org"] != "bind" || routes["b.example.net"] != "hook" || len(routes) != 2 {
		t.Errorf("DNSRoutes = %v", routes)
	}
	for _, s := range []string{bind.String(), bind.GoString(), bind.LogValue().String()} {
		if strings.Contains(s, tsigSecret) {
			t.Errorf("%q shows the TSIG secret", s)
		}
	}
	if got := cfg.CAA(""); len(got) != 1 || got[0] != "letsencrypt.org" {
		t.Errorf("CAA = %v", got)
	}
}

func TestParseDNS01OnlyProvider(t *testing.T) {
	cfg := mustParse(t, ca+`
[accounts.x]
caa_identities = ["CA.Example.NET"]
[dns01.providers.only]
type = "webhook"
url = "https://hooks.example/dns"
username = "u"
password = "p"
[[certificate]]
identifiers = ["a.example.org"]
challenge = "dns-01"
account = "x"
`)
	if cfg.Certificates[0].DNSProvider != "only" {
		t.Errorf("DNSProvider = %q, want the only provider", cfg.Certificates[0].DNSProvider)
	}
	if got := cfg.CAA("x"); len(got) != 1 || got[0] != "ca.example.net" {
		t.Errorf("CAA(x) = %v", got)
	}
}

func TestParseDNS01Problems(t *testing.T) {
	dnsCert := "[[certificate]]\nidentifiers = [\"a.example\"]\nchallenge = \"dns-01\"\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"no provider", ca + dnsCert, []string{`certfleet.toml:5: certificate[0].challenge: |dns-01 needs a DNS provider`}},
		{"several, none chosen", ca + "[dns01.providers.a]\ntype = \"exec\"\nprogram = \"/x\"\n[dns01.providers.b]\ntype = \"exec\"\nprogram = \"/y\"\n" + dnsCert,
			[]string{`certfleet.toml:9: certificate[0].dns_provider: |required with several DNS providers: one of a, b`}},
		{"unknown provider", ca + "[dns01.providers.a]\ntype = \"exec\"\nprogram = \"/x\"\n" + dnsCert + "dns_provider = \"b\"\n",
			[]string{`certfleet.toml:9: certificate[0].dns_provider: |unknown DNS provider "b" (defined: a)`}},
		{"provider with http-01", ca + "[dns01.providers.a]\ntype = \"exec\"\nprogram = \"/x\"\n[[certificate]]\nidentifiers = [\"a.example\"]\ndns_provider = \"a\"\n",
			[]string{`certfleet.toml:8: certificate[0].dns_provider: |dns_provider is only used with challenge = "dns-01"`}},
		{"unknown type", ca + "[dns01.providers.a]\ntype = \"godaddy\"\n", []string{`certfleet.toml:4: dns01.providers.a.type: |unknown provider type "godaddy"`}},
		{"bad secret not shown", ca + "[dns01.providers.a]\ntype = \"rfc2136\"\nkey_name = \"k\"\nsecret = \"s3cr3t!!\"\n",
			[]string{`certfleet.toml:6: dns01.providers.a.secret: |not base64 (the value is a secret and not shown)`}},
		{"missing key", ca + "[dns01.providers.a]\ntype = \"rfc2136\"\n", []string{`certfleet.toml:3: dns01.providers.a.key_name: |required`}},
		{"md5 without opt-in", ca + "[dns01.providers.a]\ntype = \"rfc2136\"\nkey_name = \"k\"\nalgorithm = \"hmac-md5\"\nsecret = \"" + tsigSecret + "\"\n",
			[]string{`certfleet.toml:6: dns01.providers.a.algorithm: |hmac-md5 is weak`}},
		{"exec without program", ca + "[dns01.providers.a]\ntype = \"exec\"\n", []string{`certfleet.toml:3: dns01.providers.a.program: |required`}},
		{"webhook url with password", ca + "[dns01.providers.a]\ntype = \"webhook\"\nurl = \"https://u:pw@x.example/\"\n",
			[]string{`certfleet.toml:5: dns01.providers.a.url: |the URL must not hold credentials`}},
		{"resolver by name", ca + "[dns01]\nnameservers = [\"ns.example\"]\n", []string{`certfleet.toml:4: dns01.nameservers[0]: |"ns.example" is not an IP address`}},
		{"one name, two providers", ca + "[dns01.providers.a]\ntype = \"exec\"\nprogram = \"/x\"\n[dns01.providers.b]\ntype = \"exec\"\nprogram = \"/y\"\n" +
			dnsCert + "dns_provider = \"a\"\n[[certificate]]\nname = \"w\"\nidentifiers = [\"*.a.example\"]\nchallenge = \"dns-01\"\ndns_provider = \"b\"\n",
			[]string{`certfleet.toml:17: certificate[1].dns_provider: |"a.example" uses DNS provider "b" here but "a" in certificate[0]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustProblems(t, tc.src)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				prefix, phrase, _ := strings.Cut(w, "|")
				if s := got[i].String(); !strings.HasPrefix(s, prefix) || !strings.Contains(s, phrase) {
					t.Errorf("problem %d = %q, want prefix %q and phrase %q", i, s, prefix, phrase)
				}
				if strings.Contains(got[i].String(), "s3cr3t") {
					t.Errorf("problem %q shows the secret", got[i])
				}
			}
		})
	}
}

func TestDNSSecretSyntaxError(t *testing.T) {
	for _, src := range []string{
		ca + "[dns01.providers.a]\ntype = \"rfc2136\"\nsecret = \"s3cr3t\n",
		ca + "[dns01.providers.a]\ntype = \"webhook\"\nbearer_token = s3cr3t\n",
		ca + "[dns01.providers.a]\ntype = \"webhook\"\npassword = \"s3cr3t\" junk\n",
	} {
		got := mustProblems(t, src)
		if s := got[0].String(); strings.Contains(s, "s3cr3t") || !strings.Contains(s, "not shown") {
			t.Errorf("syntax problem %q shows the secret or does not say why it is hidden", s)
		}
	}
}

// TestDNSDefaultProvider: names requested over the API use [defaults]
// dns_provider, else the only provider; with several and no default, none.
func TestDNSDefaultProvider(t *testing.T) {
	one := "[dns01.providers.bind]\ntype = \"exec\"\nprogram = \"/bin/true\"\n"
	two := one + "[dns01.providers.hook]\ntype = \"exec\"\nprogram = \"/bin/true\"\n"
	for _, c := range []struct{ src, want string }{
		{one, "bind"},
		{two, ""},
		{"[defaults]\ndns_provider = \"hook\"\n" + two, "hook"},
	} {
		cfg := mustParse(t, c.src)
		if cfg.DNS01.DefaultProvider != c.want {
			t.Errorf("DefaultProvider = %q, want %q for\n%s", cfg.DNS01.DefaultProvider, c.want, c.src)
		}
	}
}

// TestDNS01OneMistakeOneError (issue 15, finding 4): lego's and BIND's
// spelling of a TSIG algorithm, with its trailing dot, is accepted; and a
// broken provider, the only one, is reported once, not also as "dns-01
// needs a DNS provider" at every certificate.
func TestDNS01OneMistakeOneError(t *testing.T) {
	cfg := mustParse(t, ca+`
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
algorithm = "HMAC-SHA512."
secret = "`+tsigSecret+`"
[[certificate]]
identifiers = ["a.example.org"]
challenge = "dns-01"
`)
	if alg := cfg.DNS01.Providers["bind"].Algorithm; alg != "hmac-sha512" {
		t.Errorf("algorithm HMAC-SHA512. = %q, want hmac-sha512", alg)
	}
	ps := mustProblems(t, ca+`
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
algorithm = "hmac-sha257"
secret = "`+tsigSecret+`"
[[certificate]]
identifiers = ["a.example.org"]
challenge = "dns-01"
[[certificate]]
identifiers = ["b.example.org"]
challenge = "dns-01"
`)
	if len(ps) != 1 || !strings.Contains(ps[0].String(), `unknown TSIG algorithm "hmac-sha257"`) {
		t.Errorf("problems = %v; want exactly one, the unknown algorithm", ps)
	}
}
