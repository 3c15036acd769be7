package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// ca is the [ca] table most test snippets need.
const ca = "[ca]\ndirectory = \"letsencrypt\"\n"

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse("/etc/certfleet/certfleet.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func mustProblems(t *testing.T, src string) []Problem {
	t.Helper()
	cfg, err := Parse("certfleet.toml", []byte(src))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Parse error = %v (%T), want *Error; config = %+v", err, err, cfg)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config along with an error")
	}
	if len(cerr.Problems) == 0 {
		t.Fatalf("*Error without problems")
	}
	return cerr.Problems
}

func TestParseExample(t *testing.T) {
	cfg, err := Load("../examples/certfleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.State, filepath.Join(dir, "certfleet.db"); got != want {
		t.Errorf("State = %q, want %q", got, want)
	}
	if got, want := cfg.Log, (Log{Level: slog.LevelInfo, Format: "text"}); got != want {
		t.Errorf("Log = %+v, want %+v", got, want)
	}
	if cfg.HTTP01Listen != ":80" || cfg.TLSALPN01Listen != ":443" {
		t.Errorf("listen = %q, %q", cfg.HTTP01Listen, cfg.TLSALPN01Listen)
	}
	if got, want := cfg.Renewal, (Renewal{Concurrency: 8}); got != want {
		t.Errorf("Renewal = %+v, want %+v", got, want)
	}
	wantAlerts := Alerts{Interval: time.Minute, ExpiryWarning: 14 * 24 * time.Hour, ExpiryCritical: 5 * 24 * time.Hour,
		StaleGrace: 12 * time.Hour, WebhookURL: "https://alerts.example.org/certfleet",
		WebhookBearerTokenFile: "/etc/certfleet/alert-token", WebhookTimeout: 10 * time.Second, WebhookRetries: 2,
		Command: []string{"/usr/local/bin/page-oncall", "--team", "pki"}, CommandTimeout: 30 * time.Second}
	if !reflect.DeepEqual(cfg.Alerts, wantAlerts) {
		t.Errorf("Alerts = %+v, want %+v", cfg.Alerts, wantAlerts)
	}
	if got := cfg.Events.HookNames(); strings.Join(got, " ") != "inventory ldap ops" || cfg.Events.Hooks["ops"].SecretFile != "/etc/certfleet/ops-hook-secret" ||
		!cfg.Events.Hooks["inventory"].Ack || len(cfg.Events.Hooks["ldap"].Command) != 5 {
		t.Errorf("Events = %+v", cfg.Events)
	}
	if e := cfg.Export; e.Dir != "/srv/ansible/inventory" || e.Layout != DefaultExportLayout || !e.AfterRenewal ||
		strings.Join(e.HostNames(), " ") != "lb1.example.org web1.example.org" || len(e.Hosts["lb1.example.org"]) != 2 {
		t.Errorf("Export = %+v", e)
	}
	staging := "https://acme-staging-v02.api.letsencrypt.org/directory"
	wantAccounts := map[string]Account{
		"default":   {Name: "default", Directory: staging, Email: "ops@example.org"},
		"customer1": {Name: "customer1", Directory: staging, Email: "pki@customer1.example"},
		"zerossl": {Name: "zerossl", Directory: "https://acme.zerossl.com/v2/DV90",
			EABKeyID: "kid-of-customer2", EABHMACKey: "c2VjcmV0LWhtYWMta2V5LWZyb20tdGhlLWNh"},
	}
	if !reflect.DeepEqual(cfg.Accounts, wantAccounts) {
		t.Errorf("Accounts = %#v,\nwant %#v", cfg.Accounts, wantAccounts)
	}

	dns := func(v string) certfleet.Identifier {
		return certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: v}
	}
	wantSpecs := []certfleet.CertificateSpec{{
		Name:        "www",
		Identifiers: []certfleet.Identifier{dns("example.org"), dns("www.example.org"), {Type: certfleet.IdentifierIP, Value: "192.0.2.10"}},
		KeyTypes:    []certfleet.KeyType{certfleet.RSA2048, certfleet.ECDSAP256},
		Challenge:   certfleet.ChallengeWebroot,
		Profile:     "tlsserver",
		RenewBefore: 30 * 24 * time.Hour,
		Source:      certfleet.SourceConfig,
	}, {
		Name:        "example.net_wildcard",
		Identifiers: []certfleet.Identifier{dns("*.example.net"), dns("example.net")},
		KeyTypes:    []certfleet.KeyType{certfleet.ECDSAP256},
		Challenge:   certfleet.ChallengeDNS01,
		Account:     "customer1",
		RenewBefore: 12 * time.Hour,
		Source:      certfleet.SourceConfig,
	}, {
		Name:        "xn--bcher-kva.example",
		Identifiers: []certfleet.Identifier{dns("xn--bcher-kva.example")},
		KeyTypes:    []certfleet.KeyType{certfleet.ECDSAP256},
		Challenge:   certfleet.ChallengeHTTP01,
		Account:     "zerossl",
		Source:      certfleet.SourceConfig,
	}}
	if got := cfg.Specs(); !reflect.DeepEqual(got, wantSpecs) {
		t.Errorf("Specs() =\n%+v\nwant\n%+v", got, wantSpecs)
	}

	nginx := []string{"systemctl", "reload", "nginx"}
	wantCerts := []struct {
		webroot string
		out     Output
	}{
		{"/var/www/example", Output{Dir: "/etc/nginx/certs/www", Owner: "root", Group: "www-data", KeyMode: 0o640,
			Commands: [][]string{nginx, {"/usr/local/bin/notify", "www renewed"}}}},
		{"", Output{Dir: "/etc/certfleet/live/example.net_wildcard", Owner: "root", Group: "ssl-cert", KeyMode: 0o640,
			Commands: [][]string{nginx}}},
		{"", Output{Dir: "/etc/certfleet/live/xn--bcher-kva.example", Owner: "root", Group: "ssl-cert", KeyMode: 0o640,
			Commands: [][]string{nginx},
			Copies:   []Copy{{Path: "/etc/haproxy/certs/buecher.pem", Content: CopyCombined, Owner: "haproxy", Mode: 0o640}}}},
	}
	if len(cfg.Certificates) != len(wantCerts) {
		t.Fatalf("%d certificates, want %d", len(cfg.Certificates), len(wantCerts))
	}
	for i, w := range wantCerts {
		c := cfg.Certificates[i]
		if c.Webroot != w.webroot {
			t.Errorf("certificate[%d].Webroot = %q, want %q", i, c.Webroot, w.webroot)
		}
		if !reflect.DeepEqual(c.Output, w.out) {
			t.Errorf("certificate[%d].Output = %+v, want %+v", i, c.Output, w.out)
		}
	}
	for _, ct := range []certfleet.ChallengeType{certfleet.ChallengeWebroot, certfleet.ChallengeDNS01, certfleet.ChallengeHTTP01} {
		if !cfg.Uses(ct) {
			t.Errorf("Uses(%s) = false", ct)
		}
	}
	if cfg.Uses(certfleet.ChallengeTLSALPN01) {
		t.Errorf("Uses(tls-alpn-01) = true")
	}
	if c, ok := cfg.Certificate("www"); !ok || c.Spec.Name != "www" {
		t.Errorf("Certificate(www) = %v, %v", c.Spec.Name, ok)
	}
	if _, ok := cfg.Certificate("nope"); ok {
		t.Errorf("Certificate(nope) found")
	}
}

func TestParseDefaults(t *testing.T) {
	cfg := mustParse(t, ca+`
[[certificate]]
identifiers = ["Example.ORG."]
`)
	want := &Config{
		File:            "/etc/certfleet/certfleet.toml",
		State:           DefaultState,
		StateDir:        "/var/lib/certfleet",
		Log:             Log{Level: slog.LevelInfo, Format: "text"},
		HTTP01Listen:    ":80",
		TLSALPN01Listen: ":443",
		Renewal:         Renewal{Concurrency: DefaultConcurrency},
		DNS01:           DNS01{PropagationTimeout: DefaultPropagationTimeout, Providers: map[string]DNSProvider{}},
		Accounts: map[string]Account{"default": {Name: "default",
			Directory: "https://acme-v02.api.letsencrypt.org/directory"}},
		Certificates: []Certificate{{
			Spec: certfleet.CertificateSpec{
				Name:        "example.org",
				Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: "example.org"}},
				KeyTypes:    []certfleet.KeyType{certfleet.ECDSAP256},
				Challenge:   certfleet.ChallengeHTTP01,
				Source:      certfleet.SourceConfig,
			},
			Output: Output{Dir: "/etc/certfleet/live/example.org", KeyMode: 0o600},
		}},
		Staging: Staging{
			Directory:  "https://acme-staging-v02.api.letsencrypt.org/directory",
			State:      "/var/lib/certfleet/certfleet-staging.db",
			OutputRoot: "/etc/certfleet/live/staging",
			base:       DefaultOutputDir,
		},
		Alerts: Alerts{Interval: DefaultAlertInterval, WebhookTimeout: DefaultAlertWebhookTimeout,
			WebhookRetries: DefaultAlertWebhookRetries, CommandTimeout: DefaultAlertCommandTimeout},
		SelfTest: SelfTest{Enabled: true}, // issue 14: a test before every order, by default
		certPos:  []certPos{{field: "certificate[0]", line: 4}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParseInheritance(t *testing.T) {
	cfg := mustParse(t, `
[ca]
directory = "https://ca.internal:9000/acme/directory"
trusted_roots = "roots.pem"

[accounts.a]           # inherits directory and trusted_roots
[accounts.b]
directory = "letsencrypt"

[renewal]
renew_before = "10d"
renew_after = "30d"

[defaults]
key_types = ["rsa3072"]
challenge = "tls-alpn-01"
output_dir = ""
commands = [["true"]]

[[certificate]]
identifiers = ["a.example"]
account = "a"

[[certificate]]
identifiers = ["b.example"]
renew_before = ""      # back to automatic
renew_after = "45d"
commands = []          # none, despite [defaults]
output_dir = "out/b"
account = "default"    # the same as leaving it out
`)
	if got, want := cfg.Accounts["a"], (Account{Name: "a", Directory: "https://ca.internal:9000/acme/directory",
		TrustedRoots: "/etc/certfleet/roots.pem"}); got != want {
		t.Errorf("account a = %#v, want %#v", got, want)
	}
	if got := cfg.Accounts["b"]; got.TrustedRoots != "" || got.Directory != directoryAliases["letsencrypt"] {
		t.Errorf("account b = %+v, want its own directory and no trusted roots", got)
	}
	a, b := cfg.Certificates[0], cfg.Certificates[1]
	if a.Spec.RenewBefore != 10*24*time.Hour || b.Spec.RenewBefore != 0 {
		t.Errorf("RenewBefore = %v, %v; want 240h, 0", a.Spec.RenewBefore, b.Spec.RenewBefore)
	}
	// renew_after (issue 16): renewal by age, defaulted from [renewal].
	if a.Spec.RenewAfter != 30*24*time.Hour || b.Spec.RenewAfter != 45*24*time.Hour {
		t.Errorf("RenewAfter = %v, %v; want 720h, 1080h", a.Spec.RenewAfter, b.Spec.RenewAfter)
	}
	if a.Spec.KeyTypes[0] != certfleet.RSA3072 || a.Spec.Challenge != certfleet.ChallengeTLSALPN01 {
		t.Errorf("a = %+v, want [defaults] key type and challenge", a.Spec)
	}
	if a.Output.Dir != "" || b.Output.Dir != "/etc/certfleet/out/b" {
		t.Errorf("output dirs = %q, %q; want \"\", /etc/certfleet/out/b", a.Output.Dir, b.Output.Dir)
	}
	if !reflect.DeepEqual(a.Output.Commands, [][]string{{"true"}}) || len(b.Output.Commands) != 0 {
		t.Errorf("commands = %q, %q", a.Output.Commands, b.Output.Commands)
	}
	if a.Spec.Account != "a" || b.Spec.Account != "" {
		t.Errorf("accounts = %q, %q; want a and \"\" (default)", a.Spec.Account, b.Spec.Account)
	}
}

func TestParseRelativePaths(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "sub", "certfleet.toml")
	src := `state = "data/certfleet.db"
[ca]
directory = "letsencrypt"
trusted_roots = "../roots.pem"
[[certificate]]
identifiers = ["example.org"]
challenge = "webroot"
webroot = "www"
output_dir = "./live/x"
`
	cfg, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"state", cfg.State, filepath.Join(tmp, "sub", "data", "certfleet.db")},
		{"trusted_roots", cfg.Accounts["default"].TrustedRoots, filepath.Join(tmp, "roots.pem")},
		{"webroot", cfg.Certificates[0].Webroot, filepath.Join(tmp, "sub", "www")},
		{"output_dir", cfg.Certificates[0].Output.Dir, filepath.Join(tmp, "sub", "live", "x")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// A relative file name resolves against the working directory.
	cfg, err = Parse("certfleet.toml", []byte(`state = "x.db"`))
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "x.db"); cfg.State != want {
		t.Errorf("State = %q, want %q", cfg.State, want)
	}

	cfg = mustParse(t, `state = "PostgreS://certfleet@db/certfleet?sslmode=verify-full"`)
	if want := "postgres://certfleet@db/certfleet?sslmode=verify-full"; cfg.State != want {
		t.Errorf("State = %q, want %q", cfg.State, want)
	}
}

func TestParseNoCertificates(t *testing.T) {
	// No certificates: no CA needed (a host that only serves the API).
	cfg := mustParse(t, "")
	if len(cfg.Accounts) != 0 || len(cfg.Certificates) != 0 || len(cfg.Specs()) != 0 {
		t.Errorf("empty file gave %+v", cfg)
	}
}

func TestParseKeyModeInteger(t *testing.T) {
	cfg := mustParse(t, ca+"[[certificate]]\nidentifiers = [\"a.example\"]\nkey_mode = 0o640\n")
	if got := cfg.Certificates[0].Output.KeyMode; got != 0o640 {
		t.Errorf("KeyMode = %#o, want 0640", got)
	}
}

func TestSpecsAreCopies(t *testing.T) {
	cfg := mustParse(t, ca+"[[certificate]]\nidentifiers = [\"a.example\"]\n")
	specs := cfg.Specs()
	specs[0].Identifiers[0].Value = "changed.example"
	specs[0].KeyTypes[0] = certfleet.RSA4096
	if got := cfg.Specs()[0]; got.Identifiers[0].Value != "a.example" || got.KeyTypes[0] != certfleet.ECDSAP256 {
		t.Errorf("changing Specs() changed the config: %+v", got)
	}
}

func cert(extra string) string {
	return ca + "[[certificate]]\nidentifiers = [\"example.org\"]\n" + extra
}

// problemCases are snippets with the problems they must be reported with:
// one "prefix|phrase" per problem, in order.
var problemCases = []struct {
	name string
	src  string
	want []string
}{
	{"syntax", "state = \"x\"\n[ca\n", []string{`certfleet.toml:2:4: |expected '.' or ']' to end table name`}},
	{"duplicate key", "state = \"a\"\nstate = \"b\"\n", []string{`certfleet.toml:2:1: |Key 'state' has already been defined`}},
	{"unknown top key", "dns02 = 1\n", []string{`certfleet.toml:1: dns02: |unknown key dns02; the keys here are state, log`}},
	{"unknown key with hint", cert("domains = [\"x.example\"]\n"), []string{
		`certfleet.toml:5: certificate[0].domains: |unknown key domains (did you mean identifiers?)`}},
	{"unknown key in [ca]", "[ca]\ndirectory = \"letsencrypt\"\nurl = \"x\"\n", []string{
		`certfleet.toml:3: ca.url: |did you mean directory?`}},
	{"unknown quoted key", "[log]\n\"le vel\" = 1\n", []string{`certfleet.toml:2: log."le vel": |unknown key "le vel"`}},
	{"unknown table", "[dns]\nprovider = \"x\"\n", []string{`certfleet.toml:1: dns: |unknown key dns`}},
	{"wrong type", "state = 5\n", []string{`certfleet.toml:1: state: |must be a string, not an integer`}},
	{"table expected", "log = \"debug\"\n", []string{`certfleet.toml:1: log: |must be a table`}},
	{"single certificate table", ca + "[certificate]\nidentifiers = [\"a.example\"]\n", []string{
		`certfleet.toml:3: certificate: |write each certificate under its own [[certificate]] header`}},
	{"empty state", "state = \"\"\n", []string{`certfleet.toml:1: state: |must not be empty`}},
	{"state scheme", "state = \"mysql://x\"\n", []string{`certfleet.toml:1: state: |unsupported store URL`}},
	{"tilde", "state = \"~/x.db\"\n", []string{`certfleet.toml:1: state: |~ is not expanded`}},
	{"log level", "[log]\nlevel = \"loud\"\n", []string{`certfleet.toml:2: log.level: |unknown level "loud"`}},
	{"log format", "[log]\nformat = \"xml\"\n", []string{`certfleet.toml:2: log.format: |unknown format "xml"`}},
	{"listen", "[http01]\nlisten = \"80\"\n", []string{`certfleet.toml:2: http01.listen: |"80" is not a listen address`}},
	{"concurrency", "[renewal]\nconcurrency = 0\n", []string{`certfleet.toml:2: renewal.concurrency: |out of range`}},
	{"concurrency type", "[renewal]\nconcurrency = \"8\"\n", []string{`certfleet.toml:2: renewal.concurrency: |must be an integer`}},
	{"renew_before in defaults", "[defaults]\nrenew_before = \"30d\"\n", []string{
		`certfleet.toml:2: defaults.renew_before: |set in [renewal]`}},
	{"renewal duration", "[renewal]\nrenew_before = \"30 days\"\n", []string{
		`certfleet.toml:2: renewal.renew_before: |invalid duration "30 days"`}},
	{"renew_after in defaults", "[defaults]\nrenew_after = \"30d\"\n", []string{
		`certfleet.toml:2: defaults.renew_after: |set in [renewal]`}},
	{"renew_after duration", "[renewal]\nrenew_after = \"a month\"\n", []string{
		`certfleet.toml:2: renewal.renew_after: |invalid duration "a month"`}},
	{"missing ca", "[[certificate]]\nidentifiers = [\"example.org\"]\n", []string{
		`certfleet.toml: ca.directory: |required: certificates use the default account`}},
	{"ca without directory", "[ca]\nemail = \"a@example.org\"\n", []string{
		`certfleet.toml:1: ca.directory: |required`}},
	{"ca without directory, with certificates", "[ca]\nemail = \"a@example.org\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n", []string{
		`certfleet.toml:1: ca.directory: |required`}},
	{"empty ca with certificates", "[ca]\n[[certificate]]\nidentifiers = [\"a.example\"]\n", []string{
		`certfleet.toml:1: ca.directory: |required: certificates use the default account`}},
	{"directory not https", "[ca]\ndirectory = \"http://ca.example/dir\"\n", []string{
		`certfleet.toml:2: ca.directory: |"http://ca.example/dir" is neither an https:// URL nor a known CA`}},
	{"directory relative", "[ca]\ndirectory = \"/directory\"\n", []string{`certfleet.toml:2: ca.directory: |neither an https:// URL`}},
	{"directory alias typo", "[ca]\ndirectory = \"letsencrypt-stage\"\n", []string{`certfleet.toml:2: ca.directory: |known CA`}},
	{"email", "[ca]\ndirectory = \"letsencrypt\"\nemail = \"ops at example.org\"\n", []string{
		`certfleet.toml:3: ca.email: |"ops at example.org" is not an email address`}},
	{"eab id without hmac", "[ca]\ndirectory = \"zerossl\"\neab_key_id = \"kid\"\n", []string{
		`certfleet.toml:1: ca.eab_hmac_key: |required with eab_key_id`}},
	{"eab hmac without id", "[ca]\ndirectory = \"zerossl\"\neab_hmac_key = \"c2VjcmV0\"\n", []string{
		`certfleet.toml:1: ca.eab_key_id: |required with eab_hmac_key`}},
	{"eab hmac not base64url", "[ca]\ndirectory = \"zerossl\"\neab_key_id = \"kid\"\neab_hmac_key = \"s3cr3t+/!!\"\n", []string{
		`certfleet.toml:4: ca.eab_hmac_key: |not a base64url string`}},
	{"account without directory", "[accounts.x]\nemail = \"a@example.org\"\n", []string{
		`certfleet.toml:1: accounts.x.directory: |required, since [ca] has no directory to inherit`}},
	{"account named default", ca + "[accounts.default]\n", []string{`certfleet.toml:3: accounts.default: |reserved for [ca]`}},
	{"account name", ca + "[accounts.\"a b\"]\n", []string{`certfleet.toml:3: accounts."a b": |account name "a b"`}},
	{"unknown account", cert("account = \"customer9\"\n"), []string{
		`certfleet.toml:5: certificate[0].account: |unknown account "customer9" (configured: default)`}},
	{"missing identifiers", ca + "[[certificate]]\nname = \"x\"\n", []string{
		`certfleet.toml:3: certificate[0].identifiers: |required`}},
	{"empty identifiers", ca + "[[certificate]]\nidentifiers = []\n", []string{
		`certfleet.toml:4: certificate[0].identifiers: |empty`}},
	{"identifier not a string", ca + "[[certificate]]\nidentifiers = [\"a.example\", 3]\n", []string{
		`certfleet.toml:4: certificate[0].identifiers[1]: |must be a string`}},
	{"invalid identifiers", ca + `[[certificate]]
name = "x"
identifiers = [
  "example.org",
  "exa_mple.org",
  "localhost",
]
`, []string{
		`certfleet.toml:7: certificate[0].identifiers[1]: |identifier "exa_mple.org": label "exa_mple" has the character '_'`,
		`certfleet.toml:8: certificate[0].identifiers[2]: |at least two labels`,
	}},
	{"duplicate identifier", ca + "[[certificate]]\nidentifiers = [\"a.example\", \"b.example\", \"a.example\"]\n", []string{
		`certfleet.toml:4: certificate[0].identifiers[2]: |"a.example" is listed twice`}},
	{"duplicate after normalisation", ca + "[[certificate]]\nidentifiers = [\"a.example\", \"A.Example.\"]\n", []string{
		`certfleet.toml:4: certificate[0].identifiers[1]: |"A.Example." is the same name as "a.example"`}},
	{"too many identifiers", ca + "[[certificate]]\nidentifiers = [" + manyIdentifiers(101) + "]\n", []string{
		`certfleet.toml:4: certificate[0].identifiers: |101 identifiers; a certificate may hold at most 100`}},
	{"wildcard with http-01", ca + "[[certificate]]\nidentifiers = [\"*.example.org\"]\n", []string{
		`certfleet.toml:4: certificate[0].identifiers[0]: |wildcard "*.example.org" can only be validated with dns-01 or dns-persist-01, not http-01`}},
	{"wildcard beside an invalid name", ca + "[[certificate]]\nidentifiers = [\"*.example.org\", \"a..b\"]\n", []string{
		`certfleet.toml:4: certificate[0].identifiers[1]: |DNS name has an empty label`,
		`certfleet.toml:4: certificate[0].identifiers[0]: |wildcard "*.example.org" can only be validated with dns-01`}},
	{"ip with dns-01", ca + "[[certificate]]\nidentifiers = [\"a.example\", \"2001:DB8::1\"]\nchallenge = \"dns-01\"\n", []string{
		`certfleet.toml:4: certificate[0].identifiers[1]: |IP address "2001:db8::1" cannot be validated with dns-01`}},
	{"endpoint protocol", cert("endpoints = [\"lb.example:443\", \"ftp://files.example\"]\n"), []string{
		`certfleet.toml:5: certificate[0].endpoints[1]: |"ftp://files.example": unknown endpoint protocol "ftp"`}},
	{"endpoint path", cert("endpoints = [\"tls://lb.example/health\"]\n"), []string{
		`certfleet.toml:5: certificate[0].endpoints[0]: |write [protocol://]host[:port]`}},
	{"unknown key type", cert("key_types = [\"ecdsa-p256\", \"ed25519\"]\n"), []string{
		`certfleet.toml:5: certificate[0].key_types[1]: |unknown key type "ed25519"`}},
	{"same family", cert("key_types = [\"rsa2048\", \"rsa4096\"]\n"), []string{
		`certfleet.toml:5: certificate[0].key_types: |dual certificates need one RSA and one ECDSA key type, not rsa2048 and rsa4096`}},
	{"three key types", cert("key_types = [\"rsa2048\", \"ecdsa-p256\", \"ecdsa-p384\"]\n"), []string{
		`certfleet.toml:5: certificate[0].key_types: |give one key type, or two`}},
	{"no key types", cert("key_types = []\n"), []string{`certfleet.toml:5: certificate[0].key_types: |give one key type`}},
	{"unknown challenge", cert("challenge = \"http01\"\n"), []string{
		`certfleet.toml:5: certificate[0].challenge: |unknown challenge "http01"`}},
	{"webroot without webroot", cert("challenge = \"webroot\"\n"), []string{
		`certfleet.toml:5: certificate[0].challenge: |challenge "webroot" needs webroot`}},
	{"webroot with another challenge", cert("webroot = \"/var/www\"\n"), []string{
		`certfleet.toml:5: certificate[0].webroot: |only used with challenge = "webroot"`}},
	{"bad name", cert("name = \"../etc\"\n"), []string{`certfleet.toml:5: certificate[0].name: |certificate name "../etc"`}},
	{"default name too long", ca + "[[certificate]]\nidentifiers = [\"" + strings.Repeat("a", 63) + "." +
		strings.Repeat("b", 63) + "." + strings.Repeat("c", 10) + "\"]\n", []string{
		`certfleet.toml:3: certificate[0].name: |the name defaults to the first identifier`}},
	{"duplicate names", ca + `[[certificate]]
identifiers = ["example.org"]

[[certificate]]
identifiers = ["example.org", "www.example.org"]
`, []string{`certfleet.toml:6: certificate[1].name: |"example.org" is already used by certificate[0] at line 3 (the name defaults`}},
	{"duplicate explicit names", ca + "[[certificate]]\nname = \"Www\"\nidentifiers = [\"a.example\"]\n" +
		"[[certificate]]\nname = \"www\"\nidentifiers = [\"b.example\"]\n", []string{
		`certfleet.toml:7: certificate[1].name: |"www" is already used by certificate[0] at line 3`}},
	{"duplicate output dirs", ca + "[[certificate]]\nidentifiers = [\"a.example\"]\noutput_dir = \"/x\"\n" +
		"[[certificate]]\nidentifiers = [\"b.example\"]\noutput_dir = \"/x/\"\n", []string{
		`certfleet.toml:8: certificate[1].output_dir: |/x is already the output directory of certificate[0]`}},
	{"bad duration", cert("renew_before = \"-30d\"\n"), []string{`certfleet.toml:5: certificate[0].renew_before: |invalid duration "-30d"`}},
	{"bad renew_after", cert("renew_after = \"-30d\"\n"), []string{`certfleet.toml:5: certificate[0].renew_after: |invalid duration "-30d"`}},
	{"duration without unit", cert("renew_before = \"30\"\n"), []string{`certfleet.toml:5: certificate[0].renew_before: |invalid duration`}},
	{"reuse_key type", cert("reuse_key = \"yes\"\n"), []string{`certfleet.toml:5: certificate[0].reuse_key: |must be true or false`}},
	{"profile", cert("profile = \"short lived\"\n"), []string{`certfleet.toml:5: certificate[0].profile: |not a profile name`}},
	{"key_mode not octal", cert("key_mode = \"0648\"\n"), []string{`certfleet.toml:5: certificate[0].key_mode: |"0648" is not an octal file mode`}},
	{"key_mode decimal", cert("key_mode = 640\n"), []string{`certfleet.toml:5: certificate[0].key_mode: |01200 is not a permission mode`}},
	{"key_mode world readable", cert("key_mode = \"0644\"\n"), []string{
		`certfleet.toml:5: certificate[0].key_mode: |0644 lets every user on the host read`}},
	{"owner", cert("owner = \"root:root\"\n"), []string{`certfleet.toml:5: certificate[0].owner: |"root:root" is not a user or group name`}},
	{"commands flat", cert("commands = [\"systemctl\", \"reload\", \"nginx\"]\n"), []string{
		`certfleet.toml:5: certificate[0].commands[0]: |must be an argv list, not a string`,
		`certfleet.toml:5: certificate[0].commands[1]: |must be an argv list`,
		`certfleet.toml:5: certificate[0].commands[2]: |must be an argv list`}},
	{"commands string", cert("commands = \"systemctl reload nginx\"\n"), []string{
		`certfleet.toml:5: certificate[0].commands: |must be a list of argv lists`}},
	{"empty command", cert("commands = [\n  [\"true\"],\n  [],\n]\n"), []string{
		`certfleet.toml:7: certificate[0].commands[1]: |empty command`}},
	{"empty program", cert("commands = [[\"\", \"x\"]]\n"), []string{`certfleet.toml:5: certificate[0].commands[0][0]: |the program name is empty`}},
	{"bad defaults", ca + "[defaults]\nkey_types = [\"dsa\"]\nchallenge = \"dns01\"\n[[certificate]]\nidentifiers = [\"*.a.example\"]\n", []string{
		`certfleet.toml:4: defaults.key_types[0]: |unknown key type "dsa"`,
		`certfleet.toml:5: defaults.challenge: |unknown challenge "dns01"`}},
	{"several certificates", ca + `[[certificate]]
identifiers = ["a.example"]

[[certificate]]
identifiers = ["exa mple.org"]
key_types = ["rsa1024"]

[[certificate]]
name = "c"
identifiers = ["c.example"]
challenge = "tls-alpn-01"
renew_before = "soon"
`, []string{
		`certfleet.toml:7: certificate[1].identifiers[0]: |"exa mple.org"`,
		`certfleet.toml:8: certificate[1].key_types[0]: |unknown key type "rsa1024"`,
		`certfleet.toml:14: certificate[2].renew_before: |invalid duration "soon"`,
	}},
	{"inline array of tables", "certificate = [\n  {identifiers = [\"a.example\"]},\n  {identifiers = [\"b.example\"], challenge = \"x\"},\n]\n" + ca, []string{
		`certfleet.toml:3: certificate[1].challenge: |unknown challenge "x"`}},
}

// TestParseProblems checks each documented problem: where it is reported
// (file:line: field:) and the phrase that says what is wrong.
func TestParseProblems(t *testing.T) {
	for _, tc := range problemCases {
		t.Run(tc.name, func(t *testing.T) {
			problems := mustProblems(t, tc.src)
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				prefix, phrase, _ := strings.Cut(w, "|")
				if !strings.HasPrefix(got[i], prefix) || !strings.Contains(got[i], phrase) {
					t.Errorf("problem %d = %q,\nwant prefix %q and phrase %q", i, got[i], prefix, phrase)
				}
			}
		})
	}
}

func manyIdentifiers(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "\"h%d.example\", ", i)
	}
	return b.String()
}

func TestErrorLines(t *testing.T) {
	err := &Error{Problems: []Problem{
		{File: "c.toml", Line: 3, Field: "state", Message: "bad"},
		{File: "c.toml", Line: 1, Column: 5, Message: "syntax"},
		{File: "c.toml", Field: "ca.directory", Message: "required"},
	}}
	want := "c.toml:3: state: bad\nc.toml:1:5: syntax\nc.toml: ca.directory: required"
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	sortProblems(err.Problems)
	if got := []int{err.Problems[0].Line, err.Problems[1].Line, err.Problems[2].Line}; !reflect.DeepEqual(got, []int{1, 3, 0}) {
		t.Errorf("sorted lines = %v, want [1 3 0]", got)
	}
}

// TestSecretNotShown checks that no problem quotes the EAB HMAC key, whether
// the file is well-formed or not, and that the account's printed forms leave
// it out.
func TestSecretNotShown(t *testing.T) {
	const secret = "SECRETsecret"
	for _, src := range []string{
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = \"" + secret + "+/\"\n",
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = " + secret + "\n",
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = \"" + secret + "\n",
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = \"" + secret + "\\q\"\n",
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = \"" + secret + "\" junk\n",
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = \"\"\"" + secret + "\n\n\n\n\n",
		"[ca]\ndirectory = \"zerossl\"\neab_hmac_key = 1979-05-27" + secret + "\n",
		"[accounts.x]\ndirectory = \"zerossl\"\neab_hmac_key = \"" + secret + "\"\n",
	} {
		_, err := Parse("c.toml", []byte(src))
		if err == nil {
			t.Errorf("Parse(%q) succeeded", src)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Parse(%q) error shows the secret:\n%v", src, err)
		}
	}

	cfg := mustParse(t, "[ca]\ndirectory = \"zerossl\"\neab_key_id = \"kid\"\neab_hmac_key = \""+secret+"\"\n")
	a := cfg.Accounts["default"]
	if a.EABHMACKey != secret {
		t.Fatalf("EABHMACKey = %q, want %q", a.EABHMACKey, secret)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("account", "account", a)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), fmt.Sprint(cfg.Accounts), buf.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("printed account shows the secret: %s", s)
		}
		if !strings.Contains(s, "kid") {
			t.Errorf("printed account lacks the key ID: %s", s)
		}
	}
}

func TestContact(t *testing.T) {
	if got := (Account{Email: "a@example.org"}).Contact(); !reflect.DeepEqual(got, []string{"mailto:a@example.org"}) {
		t.Errorf("Contact() = %q", got)
	}
	if got := (Account{}).Contact(); got != nil {
		t.Errorf("Contact() = %q, want nil", got)
	}
	cfg := mustParse(t, "[ca]\ndirectory = \"letsencrypt\"\nemail = \"mailto:a@example.org\"\n")
	if got := cfg.Accounts["default"].Email; got != "a@example.org" {
		t.Errorf("Email = %q, want the mailto: prefix removed", got)
	}
}

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"example.org", "example.org"},
		{"*.example.org", "example.org_wildcard"},
		{"192.0.2.10", "192.0.2.10"},
		{"2001:db8::1", "2001_db8__1"},
	} {
		id, err := certfleet.ParseIdentifier(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got := defaultName(id)
		if got != tc.want {
			t.Errorf("defaultName(%s) = %q, want %q", tc.in, got, tc.want)
		}
		if err := certfleet.ValidateName(got); err != nil {
			t.Errorf("defaultName(%s) = %q: %v", tc.in, got, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"0", 0, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"12h", 12 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"", 0, true},
		{"30", 0, true},
		{"d", 0, true},
		{"-1d", 0, true},
		{"+1d", 0, true},
		{"1w", 0, true},
		{"30 d", 0, true},
		{"1..5d", 0, true},
		{"100000000d", 0, true},
		{"106751d", 106751 * 24 * time.Hour, false},
		{"106751d106751d", 0, true},
	} {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseEndpoints(t *testing.T) {
	src := ca + "[[certificate]]\nidentifiers = [\"*.example.org\", \"www.example.org\"]\nchallenge = \"dns-01\"\n" +
		"[dns01.providers.bind]\ntype = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nkey_name = \"k\"\nsecret = \"c2VjcmV0\"\n"
	src = strings.Replace(src, "challenge = \"dns-01\"\n", "challenge = \"dns-01\"\nendpoints = [\"lb1.example.org\", \"smtp://mx.example.org\", \"IMAP://10.0.0.5:993\", \"postgres://db.example.org\", \"imaps://mail.example.org\"]\n", 1)
	cfg, err := Parse("certfleet.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range cfg.Certificates[0].Endpoints {
		got = append(got, e.String())
	}
	want := []string{
		"tls lb1.example.org:443 (SNI www.example.org)",
		"smtp mx.example.org:25 (SNI www.example.org)",
		"imap 10.0.0.5:993 (SNI www.example.org)",
		"postgres db.example.org:5432 (SNI www.example.org)",
		"tls mail.example.org:993 (SNI www.example.org)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("endpoints:\n got %q\nwant %q", got, want)
	}
}

func TestStoredSecretRefs(t *testing.T) {
	cfg := mustParse(t, `
state = "/var/lib/certfleet/c.db"
[ca]
directory = "https://ca.example/dir"
eab_key_id = "kid"
eab_hmac_key = "store:eab-main"
[dns01.providers.bind]
type = "rfc2136"
server = "127.0.0.1:53"
key_name = "certfleet"
secret = "store:tsig"
[dns01.providers.api]
type = "webhook"
url = "https://dns.example/acme"
bearer_token = "store:dns-api"
`)
	if !cfg.HasSecretRefs() {
		t.Fatal("HasSecretRefs = false")
	}
	if cfg.StateDir != "/var/lib/certfleet" {
		t.Errorf("StateDir = %q, want the database's directory", cfg.StateDir)
	}
	var asked []string
	values := map[string]string{"eab-main": "c2VjcmV0", "tsig": "c2VjcmV0LXRzaWc=", "dns-api": "tok"}
	resolved := cfg.Clone()
	err := resolved.ResolveSecrets(func(where, name string) (string, error) {
		asked = append(asked, where+"="+name)
		return values[name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[accounts.default] eab_hmac_key=eab-main,[dns01.providers.api] bearer_token=dns-api,[dns01.providers.bind] secret=tsig"
	if got := strings.Join(asked, ","); got != want {
		t.Errorf("lookups = %s\nwant %s", got, want)
	}
	if resolved.Accounts["default"].EABHMACKey != "c2VjcmV0" || resolved.DNS01.Providers["bind"].Secret != "c2VjcmV0LXRzaWc=" || resolved.DNS01.Providers["api"].BearerToken != "tok" {
		t.Errorf("not resolved: %+v %+v", resolved.Accounts["default"], resolved.DNS01.Providers)
	}
	if cfg.DNS01.Providers["bind"].Secret != "store:tsig" || cfg.Accounts["default"].EABHMACKey != "store:eab-main" {
		t.Error("ResolveSecrets on the clone changed the original")
	}

	// A stored value that is not what the setting needs: named, not shown.
	bad := cfg.Clone()
	err = bad.ResolveSecrets(func(where, name string) (string, error) {
		if name == "tsig" {
			return "not base64 at all!", nil
		}
		return values[name], nil
	})
	if err == nil || !strings.Contains(err.Error(), `[dns01.providers.bind] secret: stored secret "tsig" is not base64`) || strings.Contains(err.Error(), "not base64 at all!") {
		t.Errorf("bad stored TSIG secret: %v", err)
	}

	problems := mustProblems(t, `
[ca]
directory = "https://ca.example/dir"
eab_key_id = "kid"
eab_hmac_key = "store:Bad Name"
`)
	if len(problems) != 1 || problems[0].Line != 5 || !strings.Contains(problems[0].Message, "secret name") {
		t.Errorf("bad secret name: %v", problems)
	}
}

// TestOneErrorPerField: a value of the wrong type is one error, not also a
// "required" for the field it did not set (issue 15: one config problem
// gives one error).
func TestOneErrorPerField(t *testing.T) {
	_, err := Parse("bad.toml", []byte("[ca]\ndirectory = 5\n[[certificate]]\nname = \"x\"\nidentifiers = [\"x.example\"]\n"))
	if err == nil {
		t.Fatal("a directory given as a number was accepted")
	}
	if n := strings.Count(err.Error(), "ca.directory"); n != 1 {
		t.Errorf("ca.directory reported %d times, want once:\n%v", n, err)
	}
}
