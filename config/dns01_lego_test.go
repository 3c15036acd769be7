package config

import (
	"strings"
	"testing"
)

// TestParseLegoProviders: the types written through lego decode their own
// keys, defaults left to the adapter, secrets as given.
func TestParseLegoProviders(t *testing.T) {
	cfg := mustParse(t, ca+`[dns01.providers.pdns]
type = "powerdns"
api_url = "http://127.0.0.1:8081"
api_key = "store:pdns-key"
ttl = 300
timeout = "10s"
`)
	p := cfg.DNS01.Providers["pdns"]
	if p.Type != DNSProviderPowerDNS || p.Keys["api_url"] != "http://127.0.0.1:8081" || p.Keys["api_key"] != "store:pdns-key" ||
		p.Keys["ttl"] != "300" || p.Keys["timeout"] != "10s" {
		t.Errorf("powerdns = %+v %v", p, p.Keys)
	}
	if _, ok := p.Keys["server_name"]; ok {
		t.Errorf("unset key server_name present: %v", p.Keys)
	}
	if s := p.String() + p.GoString(); strings.Contains(s, "pdns-key") || !strings.Contains(s, "api_url=http://127.0.0.1:8081") {
		t.Errorf("String = %q: shows a secret or not the API", s)
	}
	if !cfg.HasSecretRefs() {
		t.Error("HasSecretRefs misses a lego provider's store:NAME")
	}
	resolved := cfg.Clone()
	err := resolved.ResolveSecrets(func(where, name string) (string, error) {
		if where != "[dns01.providers.pdns] api_key" || name != "pdns-key" {
			t.Errorf("lookup(%q, %q)", where, name)
		}
		return "resolved-key", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resolved.DNS01.Providers["pdns"].Keys["api_key"]; got != "resolved-key" {
		t.Errorf("resolved api_key = %q", got)
	}
	if got := cfg.DNS01.Providers["pdns"].Keys["api_key"]; got != "store:pdns-key" {
		t.Errorf("ResolveSecrets on the clone changed the original: %q", got)
	}
}

func TestParseLegoProviderProblems(t *testing.T) {
	p := ca + "[dns01.providers.a]\n"
	for _, tc := range legoProblemCases(p) {
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
					t.Errorf("problem %q shows a secret", got[i])
				}
			}
		})
	}
}

type problemCase struct {
	name, src string
	want      []string
}

func legoProblemCases(p string) []problemCase {
	return []problemCase{
		{"missing required", p + "type = \"powerdns\"\napi_url = \"http://x:8081\"\n",
			[]string{`certfleet.toml:3: dns01.providers.a.api_key: |required: the API key`}},
		{"bad url", p + "type = \"powerdns\"\napi_url = \"127.0.0.1:8081\"\napi_key = \"s3cr3t\"\n",
			[]string{`certfleet.toml:5: dns01.providers.a.api_url: |"127.0.0.1:8081" is not an http:// or https:// URL`}},
		{"unknown key", p + "type = \"powerdns\"\napi_url = \"http://x:8081\"\napi_key = \"k\"\ntoken = \"s3cr3t\"\n",
			[]string{`certfleet.toml:7: dns01.providers.a.token: |unknown key`}},
		{"wrong kind", p + "type = \"powerdns\"\napi_url = \"http://x:8081\"\napi_key = \"s3cr3t\"\nttl = \"60\"\n",
			[]string{`certfleet.toml:7: dns01.providers.a.ttl: |must be a non-negative integer`}},
		{"bad timeout", p + "type = \"powerdns\"\napi_url = \"http://x:8081\"\napi_key = \"s3cr3t\"\ntimeout = \"0s\"\n",
			[]string{`certfleet.toml:7: dns01.providers.a.timeout: |not a positive duration`}},
		{"bad store name", p + "type = \"powerdns\"\napi_url = \"http://x:8081\"\napi_key = \"store:\"\n",
			[]string{`certfleet.toml:6: dns01.providers.a.api_key: |stored secret`}},
		{"no credentials", p + "type = \"cloudflare\"\n",
			[]string{`certfleet.toml:3: dns01.providers.a.api_token: |cloudflare needs credentials: set api_token, or email + api_key`}},
		{"two credential sets", p + "type = \"cloudflare\"\napi_token = \"s3cr3t\"\nemail = \"e@x\"\napi_key = \"k\"\n",
			[]string{`certfleet.toml:6: dns01.providers.a.email: |set only one of`}},
		{"half a credential set", p + "type = \"ovh\"\nendpoint = \"ovh-eu\"\napplication_key = \"a\"\napplication_secret = \"s3cr3t\"\n",
			[]string{`certfleet.toml:3: dns01.providers.a.consumer_key: |required with application_key and application_secret`}},
		{"ttl below minimum", p + "type = \"gandi\"\npersonal_access_token = \"s3cr3t\"\nttl = 60\n",
			[]string{`certfleet.toml:6: dns01.providers.a.ttl: |60 is below gandi's minimum TTL of 300`}},
		{"zone token without api token", p + "type = \"cloudflare\"\nemail = \"e@x\"\napi_key = \"k\"\nzone_token = \"s3cr3t\"\n",
			[]string{`certfleet.toml:7: dns01.providers.a.zone_token: |zone_token goes with api_token`}},
		{"route53 wrong kind", p + "type = \"route53\"\naccess_key_id = \"a\"\nsecret_access_key = \"s3cr3t\"\nprivate_zone = \"yes\"\n",
			[]string{`certfleet.toml:7: dns01.providers.a.private_zone: |must be true or false`}},
		{"route53 without secret", p + "type = \"route53\"\naccess_key_id = \"a\"\n",
			[]string{`certfleet.toml:3: dns01.providers.a.secret_access_key: |required: IAM secret access key`}},
		{"google file and json", p + "type = \"google\"\nservice_account_file = \"/k.json\"\nservice_account_json = \"s3cr3t\"\n",
			[]string{`certfleet.toml:6: dns01.providers.a.service_account_json: |set only one of: service_account_file, or service_account_json`}},
		{"google without key", p + "type = \"google\"\nproject = \"p\"\n",
			[]string{`certfleet.toml:3: dns01.providers.a.service_account_file: |google needs credentials`}},
		{"unknown key of another type", p + "type = \"digitalocean\"\napi_token = \"t\"\napi_key = \"s3cr3t\"\n",
			[]string{`certfleet.toml:6: dns01.providers.a.api_key: |unknown key`}},
	}
}

// TestLegoSecretSyntaxError: a TOML syntax error on a lego secret key's
// line does not quote the line.
func TestLegoSecretSyntaxError(t *testing.T) {
	for _, src := range []string{
		ca + "[dns01.providers.a]\ntype = \"powerdns\"\napi_key = \"s3cr3t\n",
		ca + "[dns01.providers.a]\ntype = \"porkbun\"\nsecret_api_key = s3cr3t\n",
		ca + "[dns01.providers.a]\ntype = \"ovh\"\napplication_secret = \"s3cr3t\" junk\n",
	} {
		got := mustProblems(t, src)
		if s := got[0].String(); strings.Contains(s, "s3cr3t") || !strings.Contains(s, "not shown") {
			t.Errorf("syntax problem %q shows the secret or does not say why it is hidden", s)
		}
	}
}
