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
		`token_file: required`,
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
