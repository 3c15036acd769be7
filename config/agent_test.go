package config

import (
	"strings"
	"testing"
)

func TestParseAgent(t *testing.T) {
	f, err := ParseAgent("/etc/certfleet/agent.toml", []byte(`
server = "https://certfleet.example.net:8555/"
token_file = "token"
name = "lb1"
resync = "5m"

[[certificate]]
name = "www.example.org"
key = "rsa"
fullchain = "/etc/nginx/tls/www.pem"
privkey = "/etc/nginx/tls/www.key"
group = "nginx"
key_mode = "0640"
commands = [["sudo", "systemctl", "reload", "nginx"]]

[[certificate]]
name = "app.example.org"
csr = true
combined = "/etc/haproxy/certs/app.pem"
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Server != "https://certfleet.example.net:8555" || f.TokenFile != "/etc/certfleet/token" || f.Agent.Name != "lb1" ||
		f.Agent.Resync.Minutes() != 5 || f.Agent.StateDir != "/var/lib/certfleet-agent" {
		t.Fatalf("top level = %+v", f)
	}
	c := f.Agent.Certificates
	if len(c) != 2 || c[0].Key != "rsa" || c[0].PrivKey != "/etc/nginx/tls/www.key" || c[0].KeyMode != 0o640 ||
		c[0].Group != "nginx" || len(c[0].Commands) != 1 || !c[1].CSR || c[1].Combined != "/etc/haproxy/certs/app.pem" {
		t.Fatalf("certificates = %+v", c)
	}
}

// TestParseAgentProblems: every mistake is listed with file and line.
func TestParseAgentProblems(t *testing.T) {
	_, err := ParseAgent("agent.toml", []byte(`server = "ftp://x"
token = "cft_secret"

[[certificate]]
name = "www.example.org"
key_mode = "0644"

[[certificate]]
name = "app.example.org"
csr = true
fullchain = "/x.pem"
`))
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	for _, want := range []string{
		`agent.toml:1: server: "ftp://x": give an http:// or https:// URL`,
		`agent.toml:2: token: unknown key token`,
		`agent.toml:4: certificate[0]: no files`,
		`agent.toml:6: certificate[0].key_mode: 0644 lets every user`,
		`agent.toml:10: certificate[1].csr: CSR mode makes the key on this host`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "cft_secret") {
		t.Error("a problem quotes the token")
	}
}

func TestStagingAgent(t *testing.T) {
	const base = `
server = "https://certfleet.example.net:8555"
token_file = "token"
state_dir = "/var/lib/certfleet-agent/"
[[certificate]]
name = "www.example.org"
fullchain = "/etc/nginx/tls/www.pem"
privkey = "/etc/nginx/tls/www.key"
csr = true
commands = [["sudo", "systemctl", "reload", "nginx"]]
`
	f, err := ParseAgent("/etc/certfleet/agent.toml", []byte(base+`[staging]
server = "http://127.0.0.1:8556/"
token_file = "staging-token"
output_root = "/var/tmp/rehearsal"
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.StagingAgent()
	if err != nil {
		t.Fatal(err)
	}
	c := s.Agent.Certificates[0]
	if s.Server != "http://127.0.0.1:8556" || s.TokenFile != "/etc/certfleet/staging-token" || s.CAFile != "" ||
		s.Agent.StateDir != "/var/lib/certfleet-agent-staging" ||
		c.Fullchain != "/var/tmp/rehearsal/etc/nginx/tls/www.pem" || c.PrivKey != "/var/tmp/rehearsal/etc/nginx/tls/www.key" {
		t.Fatalf("staging agent = %+v, certificate %+v", s, c)
	}
	if f.Agent.Certificates[0].Fullchain != "/etc/nginx/tls/www.pem" || f.Server != "https://certfleet.example.net:8555" {
		t.Fatalf("StagingAgent changed the production file: %+v", f)
	}
	for _, tc := range []struct{ staging, want string }{
		{"", "needs [staging] server"},
		{"[staging]\noutput_root = \"/var/tmp/r\"\n", "needs [staging] server"},
		{"[staging]\nserver = \"http://127.0.0.1:1\"\n", "[staging] output_root"},
		{"[staging]\nserver = \"https://certfleet.example.net:8555/\"\noutput_root = \"/var/tmp/r\"\n", "is the production server"},
		{"[staging]\nserver = \"http://127.0.0.1:1\"\noutput_root = \"/\"\n", "overlaps the production output /etc/nginx/tls/www.pem"},
		{"[staging]\nserver = \"http://127.0.0.1:1\"\noutput_root = \"/var/tmp/r\"\n[[certificate]]\nname = \"x.example.org\"\ncert = \"/var/lib/certfleet-agent-staging/x.pem\"\n", "state_dir /var/lib/certfleet-agent-staging overlaps the production output"},
	} {
		f, err := ParseAgent("/etc/certfleet/agent.toml", []byte(base+tc.staging))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.StagingAgent(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.staging, err, tc.want)
		}
	}
	if _, err := ParseAgent("/etc/certfleet/agent.toml", []byte(base+"[staging]\nserverr = \"x\"\nrun_commands = \"yes\"\n")); err == nil ||
		!strings.Contains(err.Error(), "serverr") || !strings.Contains(err.Error(), "true or false") {
		t.Errorf("bad [staging] keys: %v", err)
	}
}
