package config

import (
	"strings"
	"testing"
)

func TestStagingDefaults(t *testing.T) {
	cfg := mustParse(t, ca+`
[accounts.other]
directory = "https://ca.example/dir"
eab_key_id = "kid"
eab_hmac_key = "c2VjcmV0"
[[certificate]]
identifiers = ["www.example.com"]
endpoints = ["lb.example.com"]
[[certificate]]
identifiers = ["mail.example.com"]
output_dir = "/etc/postfix/tls"
account = "other"
`)
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "/var/lib/certfleet/certfleet-staging.db" {
		t.Errorf("staging state = %q", st.State)
	}
	for name, a := range st.Accounts {
		if a.Directory != directoryAliases["letsencrypt-staging"] || a.EABKeyID != "" || a.EABHMACKey != "" {
			t.Errorf("staging account %s = %+v", name, a)
		}
	}
	if got := st.Certificates[0].Output.Dir; got != "/etc/certfleet/live/staging/www.example.com" {
		t.Errorf("re-rooted default output = %q", got)
	}
	if len(st.Certificates[0].Endpoints) != 0 || len(cfg.Certificates[0].Endpoints) != 1 {
		t.Errorf("endpoints: staging %v, production %v; want none and one", st.Certificates[0].Endpoints, cfg.Certificates[0].Endpoints)
	}
	if got := st.Certificates[1].Output.Dir; got != "/etc/certfleet/live/staging/etc/postfix/tls" {
		t.Errorf("re-rooted custom output = %q", got)
	}
	// The production config is unchanged.
	if cfg.State != DefaultState || cfg.Certificates[0].Output.Dir != "/etc/certfleet/live/www.example.com" || cfg.Accounts["other"].EABKeyID != "kid" {
		t.Errorf("StagingConfig changed the production config: %+v", cfg)
	}
}

func TestStagingRefusals(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"[ca]\ndirectory = \"https://ca.example/dir\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n", "[staging] directory"},
		{"state = \"postgres://db/certfleet\"\n" + ca + "[[certificate]]\nidentifiers = [\"a.example\"]\n", "[staging] state"},
		{ca + "[staging]\noutput_root = \"/etc/certfleet/a.example/x\"\n[[certificate]]\nidentifiers = [\"a.example\"]\noutput_dir = \"/etc/certfleet/a.example/x\"\n", "overlaps"},
		{ca + "[staging]\noutput_root = \"/etc/certfleet/live/a.example\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n", "overlaps"},
		{ca + "[staging]\nstate = \"/var/lib/certfleet/certfleet.db\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n", "is the production store"},
		{ca + "[api]\nlisten = \"127.0.0.1:8555\"\n[staging]\napi_listen = \"127.0.0.1:8555\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n", "is a production API listener"},
		{ca + "[api]\nurl_listen = \"127.0.0.1:8555\"\n[staging]\napi_listen = \"127.0.0.1:8555\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n", "is a production API listener"},
		// A certificate named "staging" would own the default staging root.
		{ca + "[[certificate]]\nname = \"staging\"\nidentifiers = [\"a.example\"]\n", "overlaps"},
	} {
		cfg := mustParse(t, tc.src)
		if _, err := cfg.StagingConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StagingConfig of\n%s\nerr = %v, want %q", tc.src, err, tc.want)
		}
	}
	if p := mustProblems(t, ca+"[staging]\nrun_commands = \"yes\"\noutput_root = \"\"\nstage = 1\n"); len(p) != 3 {
		t.Errorf("problems = %v, want 3", p)
	}
}

func TestCopyDecode(t *testing.T) {
	cfg := mustParse(t, ca+`
[defaults]
copy = [{ path = "/etc/haproxy/certs/{name}.pem", content = "combined" }]
[[certificate]]
identifiers = ["www.example.com"]
[[certificate]]
identifiers = ["mail.example.com"]
copy = [{ path = "certs/mail.crt", content = "fullchain", owner = "postfix", group = "mail", mode = "0640" }]
`)
	www, mail := cfg.Certificates[0].CopyPaths(), cfg.Certificates[1].CopyPaths()
	if len(www) != 1 || www[0] != (Copy{Path: "/etc/haproxy/certs/www.example.com.pem", Content: CopyCombined, Mode: 0o600}) {
		t.Errorf("www copies = %+v", www)
	}
	if len(mail) != 1 || mail[0] != (Copy{Path: "/etc/certfleet/certs/mail.crt", Content: CopyFullchain, Owner: "postfix", Group: "mail", Mode: 0o640}) {
		t.Errorf("mail copies = %+v", mail)
	}
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Certificates[0].CopyPaths()[0].Path; got != "/etc/certfleet/live/staging/etc/haproxy/certs/www.example.com.pem" {
		t.Errorf("staging copy path = %q", got)
	}
	if got := cfg.Certificates[0].CopyPaths()[0].Path; got != "/etc/haproxy/certs/www.example.com.pem" {
		t.Errorf("StagingConfig changed the production copy path to %q", got)
	}

	for _, tc := range []struct{ src, want string }{
		{`copy = [{ path = "/a.pem", content = "pem" }]`, "not a content"},
		{`copy = [{ content = "cert" }]`, "required"},
		{`copy = [{ path = "/a.pem", content = "key", mode = "0644" }]`, "private key"},
		{`copy = [{ path = "/a.pem", content = "cert", mode = "999" }]`, "not an octal"},
		{`copy = [{ path = "/a.pem", content = "cert", perms = "0644" }]`, "unknown key"},
		{`copy = "/a.pem"`, "list of tables"},
		{"key_types = [\"ecdsa-p256\", \"rsa2048\"]\ncopy = [{ path = \"/a.pem\", content = \"cert\" }]", "one key type"},
	} {
		p := mustProblems(t, ca+"[[certificate]]\nidentifiers = [\"a.example\"]\n"+tc.src+"\n")
		if len(p) != 1 || !strings.Contains(p[0].Message, tc.want) {
			t.Errorf("%s: problems %v, want one with %q", tc.src, p, tc.want)
		}
	}
	p := mustProblems(t, ca+"[defaults]\ncopy = [{ path = \"/a.pem\", content = \"cert\" }]\n[[certificate]]\nidentifiers = [\"a.example\"]\n[[certificate]]\nidentifiers = [\"b.example\"]\n")
	if len(p) != 1 || !strings.Contains(p[0].Message, "already written by certificate[0]") {
		t.Errorf("shared copy path: problems %v", p)
	}
}

func TestPrepareDecode(t *testing.T) {
	cfg := mustParse(t, ca+`
[defaults]
prepare = [["ufw", "allow", "80/tcp"]]
cleanup = [["ufw", "delete", "allow", "80/tcp"]]
[[certificate]]
identifiers = ["a.example"]
[[certificate]]
identifiers = ["b.example"]
prepare = []
`)
	a, b := cfg.Certificates[0], cfg.Certificates[1]
	if len(a.Prepare) != 1 || a.Prepare[0][0] != "ufw" || len(a.Cleanup) != 1 || a.Cleanup[0][1] != "delete" {
		t.Errorf("a: prepare %q cleanup %q", a.Prepare, a.Cleanup)
	}
	if len(b.Prepare) != 0 || len(b.Cleanup) != 1 {
		t.Errorf("b: prepare %q cleanup %q; want its own empty prepare and the default cleanup", b.Prepare, b.Cleanup)
	}
	a.Cleanup[0][0] = "changed"
	if b.Cleanup[0][0] != "ufw" {
		t.Error("certificates share their [defaults] argv")
	}
	if p := mustProblems(t, ca+"[[certificate]]\nidentifiers = [\"a.example\"]\nprepare = \"ufw allow 80\"\ncleanup = [[]]\n"); len(p) != 2 {
		t.Errorf("problems %v, want 2", p)
	}
}

func TestDeployTable(t *testing.T) {
	cfg := mustParse(t, ca+"[deploy]\ncommands = [[\"systemctl\", \"reload\", \"haproxy\"]]\n")
	if len(cfg.Deploy.Commands) != 1 || cfg.Deploy.Commands[0][2] != "haproxy" {
		t.Errorf("[deploy] commands = %q", cfg.Deploy.Commands)
	}
	if p := mustProblems(t, ca+"[deploy]\ncommands = \"reload\"\ncommand = []\n"); len(p) != 2 {
		t.Errorf("problems %v, want 2", p)
	}
}

func TestStagingAPIListen(t *testing.T) {
	cfg := mustParse(t, ca+"[api]\nlisten = \"127.0.0.1:8555\"\nurl_listen = \"127.0.0.1:8557\"\npack_size = 3\n[staging]\napi_listen = \"127.0.0.1:8556\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n")
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if st.API != (API{Listen: "127.0.0.1:8556", PackSize: 3, PackDelay: DefaultPackDelay}) || cfg.API.Listen != "127.0.0.1:8555" {
		t.Errorf("staging API = %+v, production %+v", st.API, cfg.API)
	}
	cfg = mustParse(t, ca+"[api]\nlisten = \"127.0.0.1:8555\"\n[[certificate]]\nidentifiers = [\"a.example\"]\n")
	if st, err := cfg.StagingConfig(); err != nil || st.API != (API{}) {
		t.Errorf("without api_listen, test mode serves %+v (%v); want no API", st.API, err)
	}
	if p := mustProblems(t, ca+"[staging]\napi_listen = \"192.0.2.1:8556\"\n"); len(p) != 1 || !strings.Contains(p[0].Message, "loopback") {
		t.Errorf("non-loopback api_listen without TLS: %v", p)
	}
	if p := mustProblems(t, ca+"[staging]\napi_listen = \"nope\"\n"); len(p) != 1 {
		t.Errorf("bad api_listen: %v", p)
	}
}
