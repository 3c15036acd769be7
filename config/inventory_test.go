package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

const inventorySources = ca + `
[defaults]
output_dir = "/srv/live"
key_types = ["rsa2048"]

[inventory.customers]
type = "postgres"
dsn = "postgres://certfleet@db.example.org/hosting"
query = "SELECT domain AS name, ARRAY[domain] AS identifiers FROM customer_domains"
grace = "2h"
[inventory.customers.defaults]
output_dir = ""
commands = [["systemctl", "reload", "nginx"]]

[inventory.ldap-main]
type = "ldap"
url = "ldap://ldap.example.org"
bind_dn = "cn=certfleet,dc=example,dc=org"
password = "store:ldap-main"
base = "ou=domains,dc=example,dc=org"
filter = "(letsencrypt=TRUE)"
attributes = { identifiers = "associatedDomain", name = "cn" }
interval = "1m"

[inventory.teams]
type = "directory"
dir = "conf.d"
`

func TestParseInventory(t *testing.T) {
	cfg := mustParse(t, inventorySources)
	if got := len(cfg.Inventory); got != 3 {
		t.Fatalf("%d sources, want 3", got)
	}
	pg, ok := cfg.InventorySource("customers")
	if !ok || pg.Type != InventoryTypePostgres || pg.Grace != 2*time.Hour || pg.Interval != DefaultInventoryInterval ||
		pg.Postgres.Channel != DefaultInventoryChannel || !strings.HasPrefix(pg.Postgres.Query, "SELECT domain") {
		t.Errorf("customers = %+v", pg)
	}
	l, _ := cfg.InventorySource("ldap-main")
	if l.LDAP.Filter != "(letsencrypt=TRUE)" || l.LDAP.Scope != "sub" || !l.LDAP.Persist || l.Interval != time.Minute ||
		l.Grace != DefaultInventoryGrace || l.LDAP.Attributes["identifiers"] != "associatedDomain" || l.LDAP.Attributes["name"] != "cn" {
		t.Errorf("ldap-main = %+v", l)
	}
	d, _ := cfg.InventorySource("teams")
	if d.Dir.Path != "/etc/certfleet/conf.d" || d.Dir.PollInterval != DefaultInventoryPollInterval {
		t.Errorf("teams = %+v", d)
	}
	if !cfg.HasSecretRefs() {
		t.Error("HasSecretRefs = false; the LDAP password names a stored secret")
	}
	// The password is resolved on a clone, never in the config itself.
	out := cfg.Clone()
	if err := out.ResolveSecrets(func(where, name string) (string, error) {
		if where != "[inventory.ldap-main] password" || name != "ldap-main" {
			t.Errorf("lookup(%q, %q)", where, name)
		}
		return "s3cret", nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := out.InventorySource("ldap-main"); got.LDAP.Password != "s3cret" {
		t.Errorf("resolved password = %q", got.LDAP.Password)
	}
	if got, _ := cfg.InventorySource("ldap-main"); got.LDAP.Password != "store:ldap-main" {
		t.Errorf("the original changed: %q", got.LDAP.Password)
	}
	if !SameInventory(cfg.Inventory, mustParse(t, inventorySources).Inventory) {
		t.Error("SameInventory of the same file = false")
	}
	if SameInventory(cfg.Inventory, mustParse(t, strings.Replace(inventorySources, `interval = "1m"`, `interval = "2m"`, 1)).Inventory) {
		t.Error("SameInventory with another interval = true")
	}
	if !cfg.Uses(certfleet.ChallengeHTTP01) {
		t.Error("Uses(http-01) = false: inventory certificates default to http-01, so its responder must run")
	}
}

func TestParseInventoryProblems(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"type missing", "[inventory.x]\ndir = \"d\"\n", `inventory.x.type: required: postgres, ldap or directory`},
		{"type unknown", "[inventory.x]\ntype = \"mysql\"\n", `inventory.x.type: unknown inventory type "mysql"`},
		{"bad name", "[inventory.\"a b\"]\ntype = \"directory\"\ndir = \"d\"\n", `inventory source name "a b"`},
		{"key of another type", "[inventory.x]\ntype = \"directory\"\ndir = \"d\"\nquery = \"SELECT 1\"\n", `inventory.x.query: query is a key of type "postgres" sources; this one is type "directory"`},
		{"pg dsn", "[inventory.x]\ntype = \"postgres\"\ndsn = \"mysql://h/db\"\nquery = \"SELECT 1\"\n", `inventory.x.dsn: not a postgres:// URL`},
		{"pg query", "[inventory.x]\ntype = \"postgres\"\ndsn = \"postgres://h/db\"\n", `inventory.x.query: required`},
		{"pg channel", "[inventory.x]\ntype = \"postgres\"\ndsn = \"postgres://h/db\"\nquery = \"SELECT 1\"\nchannel = \"a-b\"\n", `inventory.x.channel: "a-b" is not a channel name`},
		{"ldap identifiers", "[inventory.x]\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase = \"dc=x\"\nattributes = { name = \"cn\" }\n", `inventory.x.attributes.identifiers: required`},
		{"ldap attribute key", "[inventory.x]\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase = \"dc=x\"\nattributes = { identifiers = \"associatedDomain\", commands = \"x\" }\n", `inventory.x.attributes.commands: unknown key commands`},
		{"ldap url", "[inventory.x]\ntype = \"ldap\"\nurl = \"http://h\"\nbase = \"dc=x\"\nattributes = { identifiers = \"a\" }\n", `"http://h": write ldap://HOST[:PORT]`},
		{"ldap bind", "[inventory.x]\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase = \"dc=x\"\nbind_dn = \"cn=a\"\nattributes = { identifiers = \"a\" }\n", `set both bind_dn and password, or neither`},
		{"ldap filter", "[inventory.x]\ntype = \"ldap\"\nurl = \"ldap://h\"\nbase = \"dc=x\"\nfilter = \"letsencrypt=TRUE\"\nattributes = { identifiers = \"a\" }\n", `is not an LDAP filter`},
		{"webroot default", "[inventory.x]\ntype = \"directory\"\ndir = \"d\"\n[inventory.x.defaults]\nchallenge = \"webroot\"\nwebroot = \"/var/www\"\n", `inventory.x.defaults.challenge: inventory certificates cannot use challenge "webroot"`},
		{"defaults key", "[inventory.x]\ntype = \"directory\"\ndir = \"d\"\n[inventory.x.defaults]\nkey_types = [\"ed25519\"]\n", `inventory.x.defaults.key_types[0]: unknown key type "ed25519"`},
		{"interval", "[inventory.x]\ntype = \"directory\"\ndir = \"d\"\ninterval = \"0\"\n", `inventory.x.interval: must be longer than 0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := mustProblems(t, ca+tc.src)
			var all []string
			for _, p := range ps {
				all = append(all, p.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", strings.Join(all, "\n"), tc.want)
			}
		})
	}
}

func TestInventoryEntry(t *testing.T) {
	cfg := mustParse(t, inventorySources)
	t.Run("valid", func(t *testing.T) {
		cert, name, err := cfg.InventoryEntry("customers", "row id=1", map[string]any{
			"name": "shop", "identifiers": []any{"shop.example.org", "WWW.shop.example.org"}, "reuse_key": true, "renew_before": "20d",
		})
		if err != nil {
			t.Fatal(err)
		}
		sp := cert.Spec
		if name != "shop" || sp.Source != "inventory:customers" || !slices.Equal(sp.KeyTypes, []certfleet.KeyType{certfleet.RSA2048}) ||
			len(sp.Identifiers) != 2 || sp.Identifiers[1].Value != "www.shop.example.org" || !sp.ReuseKey || sp.RenewBefore != 20*24*time.Hour {
			t.Errorf("spec = %+v (name %q)", sp, name)
		}
		// The source's defaults over [defaults]: no output directory, its commands.
		if cert.Output.Dir != "" || len(cert.Output.Commands) != 1 {
			t.Errorf("output = %+v, want the source's defaults", cert.Output)
		}
	})
	t.Run("name from the first identifier, [defaults] output", func(t *testing.T) {
		cert, name, err := cfg.InventoryEntry("ldap-main", "cn=x", map[string]any{"identifiers": []any{"*.example.net"}, "challenge": "http-01"})
		if err == nil {
			t.Fatalf("a wildcard over http-01 was accepted: %+v", cert)
		}
		if name != "example.net_wildcard" {
			t.Errorf("declared name = %q", name)
		}
		cert, name, err = cfg.InventoryEntry("ldap-main", "cn=x", map[string]any{"identifiers": []any{"a.example.net"}})
		if err != nil || name != "a.example.net" || cert.Output.Dir != "/srv/live/a.example.net" {
			t.Errorf("got %q, %+v, %v", name, cert.Output, err)
		}
	})
	tests := []struct {
		name   string
		fields map[string]any
		want   []string
		named  string
	}{
		{"same messages as the config", map[string]any{"name": "a", "identifiers": []any{"a.example.org"}, "key_types": []any{"ed25519"}},
			[]string{`row 7: key_types[0]: unknown key type "ed25519" (use one of`}, "a"},
		{"keys a source may not set", map[string]any{"identifiers": []any{"b.example.org"}, "commands": []any{[]any{"rm", "-rf", "/"}}, "output_dir": "/etc"},
			[]string{"row 7: commands: commands cannot be set by an inventory source", "row 7: output_dir: output_dir cannot be set"}, "b.example.org"},
		{"unknown key with a hint", map[string]any{"domains": []any{"c.example.org"}},
			[]string{"row 7: domains: unknown key domains (did you mean identifiers?)", "row 7: identifiers: required"}, ""},
		{"webroot", map[string]any{"identifiers": []any{"d.example.org"}, "challenge": "webroot"},
			[]string{`row 7: challenge: inventory certificates cannot use challenge "webroot"`}, "d.example.org"},
		{"responder not running", map[string]any{"identifiers": []any{"e.example.org"}, "challenge": "tls-alpn-01"},
			[]string{"row 7: challenge: the tls-alpn-01 responder does not run"}, "e.example.org"},
		{"unknown account", map[string]any{"identifiers": []any{"f.example.org"}, "account": "acme-corp"},
			[]string{`row 7: account: unknown account "acme-corp"`}, "f.example.org"},
		{"not a list", map[string]any{"identifiers": "g.example.org", "reuse_key": "yes"},
			[]string{"row 7: identifiers: must be an array of strings", "row 7: reuse_key: must be true or false, not a string"}, "" /* unreadable */},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, name, err := cfg.InventoryEntry("customers", "row 7", tc.fields)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err = %v, want *Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems:\n%v\nwant %q", err, w)
				}
			}
			if name != tc.named {
				t.Errorf("declared name = %q, want %q", name, tc.named)
			}
		})
	}
	if _, _, err := cfg.InventoryEntry("nope", "row 1", nil); err == nil {
		t.Error("an unknown source was accepted")
	}
}

func TestInventoryFile(t *testing.T) {
	cfg := mustParse(t, inventorySources)
	src := `# team web
[[certificate]]
identifiers = ["web.example.org"]

[[certificate]]
name = "api"
identifiers = ["api.example.org"]
key_types = ["ecdsa-p256", "ecdsa-p384"]

[[certificate]]
name = "shop"
identifiers = ["shop.example.org"]
output_dir = "/etc/ssl"

[[certificate]]
name = "WEB.example.org"
identifiers = ["web2.example.org"]
`
	certs, invalid, err := cfg.InventoryFile("teams", "/etc/certfleet/conf.d/web.toml", []byte(src))
	if len(certs) != 1 || certs[0].Spec.Name != "web.example.org" || certs[0].Spec.Source != "inventory:teams" {
		t.Errorf("certs = %+v, want web.example.org only", certs)
	}
	if !slices.Equal(invalid, []string{"api", "shop"}) {
		t.Errorf("invalid = %v, want api and shop", invalid)
	}
	for _, w := range []string{
		"/etc/certfleet/conf.d/web.toml:8: certificate[1].key_types: dual certificates need one RSA and one ECDSA key type",
		"/etc/certfleet/conf.d/web.toml:13: certificate[2].output_dir: output_dir cannot be set by an inventory source",
		`/etc/certfleet/conf.d/web.toml:16: certificate[3].name: certificate name "WEB.example.org" is already used at line 2`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("problems:\n%v\nwant %q", err, w)
		}
	}
	if _, _, err := cfg.InventoryFile("teams", "/x/broken.toml", []byte("[[certificate]\nname = 1\n")); err == nil || !strings.HasPrefix(err.Error(), "/x/broken.toml:1") {
		t.Errorf("syntax error = %v, want one at /x/broken.toml:1", err)
	}
	if certs, _, err := cfg.InventoryFile("teams", "/x/empty.toml", nil); err != nil || len(certs) != 0 {
		t.Errorf("empty file = %v, %v", certs, err)
	}
}

// TestInventoryCertificateOfStoredSpec: the outputs of a stored spec are
// those its entry had.
func TestInventoryCertificateOfStoredSpec(t *testing.T) {
	cfg := mustParse(t, inventorySources)
	for _, src := range []string{"customers", "ldap-main"} {
		cert, _, err := cfg.InventoryEntry(src, "row 1", map[string]any{"name": "shop", "identifiers": []any{"shop.example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cfg.InventoryCertificate(src, cert.Spec)
		if !ok || !reflect.DeepEqual(got, cert) {
			t.Errorf("%s: InventoryCertificate = %+v, want %+v", src, got, cert)
		}
	}
	if _, ok := cfg.InventoryCertificate("nope", certfleet.CertificateSpec{}); ok {
		t.Error("an unknown source gave a certificate")
	}
}

// TestStagingReroutesInventoryOutputs: test mode writes an inventory
// source's certificates under the staging root, never where production
// writes them.
func TestStagingReroutesInventoryOutputs(t *testing.T) {
	cfg := mustParse(t, ca+`
[inventory.teams]
type = "directory"
dir = "/etc/certfleet/conf.d"
[inventory.teams.defaults]
copy = [{ path = "/etc/haproxy/certs/{name}.pem", content = "combined" }]
`)
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg       *Config
		dir, copy string
	}{
		{cfg, "/etc/certfleet/live/web", "/etc/haproxy/certs/web.pem"},
		{st, "/etc/certfleet/live/staging/web", "/etc/certfleet/live/staging/etc/haproxy/certs/web.pem"},
	} {
		cert, _, err := c.cfg.InventoryEntry("teams", "web.toml", map[string]any{"name": "web", "identifiers": []any{"web.example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		if cert.Output.Dir != c.dir || len(cert.CopyPaths()) != 1 || cert.CopyPaths()[0].Path != c.copy {
			t.Errorf("output %q, copies %+v; want %q and %q", cert.Output.Dir, cert.CopyPaths(), c.dir, c.copy)
		}
	}
	// Without an output root, test mode refuses a source that writes files.
	cfg.Staging.OutputRoot = ""
	if _, err := cfg.StagingConfig(); err == nil || !strings.Contains(err.Error(), "output_root") {
		t.Errorf("StagingConfig without output_root = %v", err)
	}
}

// FuzzInventoryFile checks that a file of a directory source — written by a
// team, not by the operator — never panics the decoder, fails only with an
// *Error naming the file, and that every certificate it accepts is valid,
// belongs to the source and sets nothing a source may not set.
func FuzzInventoryFile(f *testing.F) {
	f.Add([]byte("[[certificate]]\nname = \"web\"\nidentifiers = [\"web.example.org\", \"*.example.org\"]\nchallenge = \"dns-01\"\n"))
	f.Add([]byte("[[certificate]]\nidentifiers = [\"a.example.org\"]\ncommands = [[\"sh\"]]\noutput_dir = \"/etc\"\nkey_types = [\"rsa2048\", \"ecdsa-p256\"]\n"))
	f.Add([]byte("certificate = 3\n[x]\n"))
	cfg := mustParseFuzz(f, inventorySources)
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, _, err := cfg.InventoryFile("teams", "/conf.d/team.toml", data)
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 || cerr.Problems[0].File != "/conf.d/team.toml" {
				t.Fatalf("error %T %v, want *Error naming the file", err, err)
			}
		}
		for _, c := range certs {
			if err := c.Spec.Validate(); err != nil || c.Spec.Source != "inventory:teams" {
				t.Fatalf("accepted %+v: %v", c.Spec, err)
			}
			if c.Output.Dir != "/etc/certfleet/live/"+c.Spec.Name && c.Output.Dir != "/srv/live/"+c.Spec.Name {
				t.Fatalf("output_dir %q of %q is not the source's default", c.Output.Dir, c.Spec.Name)
			}
			if len(c.Output.Commands) > 0 || c.Webroot != "" || len(c.Endpoints) > 0 {
				t.Fatalf("a file set what only the config may: %+v", c)
			}
		}
	})
}

func mustParseFuzz(f *testing.F, src string) *Config {
	cfg, err := Parse("/etc/certfleet/certfleet.toml", []byte(src))
	if err != nil {
		f.Fatal(err)
	}
	return cfg
}
