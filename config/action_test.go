package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHelpersDecode(t *testing.T) {
	cfg := mustParse(t, ca+`
[defaults]
prepare_helpers = [{ command = ["ssh", "-N", "-R", "80:127.0.0.1:8080", "web1"], ready_tcp = "web1.example:80" }]
[[certificate]]
identifiers = ["a.example"]
[[certificate]]
identifiers = ["b.example", "www.b.example"]
[[certificate.prepare_helpers]]
command = ["forward", "{identifier}"]
per_name = true
ready_url = "http://{identifier}/.well-known/acme-challenge/probe"
ready_timeout = "1m"
stop_grace = "2s"
[[certificate.prepare_helpers]]
command = ["opener"]
ready_line = "^open(ed)?$"
[[certificate]]
identifiers = ["c.example"]
prepare_helpers = []
`)
	a, b, c := cfg.Certificates[0], cfg.Certificates[1], cfg.Certificates[2]
	wantA := []Helper{{Command: []string{"ssh", "-N", "-R", "80:127.0.0.1:8080", "web1"}, ReadyTCP: "web1.example:80",
		ReadyTimeout: DefaultHelperReadyTimeout, StopGrace: DefaultHelperStopGrace}}
	if !reflect.DeepEqual(a.Helpers, wantA) {
		t.Errorf("a: helpers %+v, want the [defaults] one %+v", a.Helpers, wantA)
	}
	wantB := []Helper{
		{Command: []string{"forward", "{identifier}"}, PerName: true, ReadyURL: "http://{identifier}/.well-known/acme-challenge/probe",
			ReadyTimeout: time.Minute, StopGrace: 2 * time.Second},
		{Command: []string{"opener"}, ReadyLine: "^open(ed)?$", ReadyTimeout: DefaultHelperReadyTimeout, StopGrace: DefaultHelperStopGrace},
	}
	if !reflect.DeepEqual(b.Helpers, wantB) {
		t.Errorf("b: helpers %+v, want %+v", b.Helpers, wantB)
	}
	if len(c.Helpers) != 0 {
		t.Errorf("c: helpers %+v, want none (prepare_helpers = [] opts out)", c.Helpers)
	}
	shared := mustParse(t, ca+"[defaults]\nprepare_helpers = [{ command = [\"x\"] }]\n[[certificate]]\nidentifiers = [\"a.example\"]\n[[certificate]]\nidentifiers = [\"b.example\"]\n")
	shared.Certificates[0].Helpers[0].Command[0] = "changed"
	if got := shared.Certificates[1].Helpers[0].Command[0]; got != "x" {
		t.Errorf("certificates share their [defaults] helper argv: %q", got)
	}
}

func TestHelpersProblems(t *testing.T) {
	cert := ca + "[[certificate]]\nidentifiers = [\"a.example\"]\n"
	for _, tc := range []struct {
		src, field, want string
	}{
		{`prepare_helpers = [{ ready_tcp = "a:80" }]`, "certificate[0].prepare_helpers[0].command", "required"},
		{`prepare_helpers = [{ command = [] }]`, "certificate[0].prepare_helpers[0].command", "empty command"},
		{`prepare_helpers = [{ command = ["x"], ready_tcp = "web1" }]`, "certificate[0].prepare_helpers[0].ready_tcp", "not host:port"},
		{`prepare_helpers = [{ command = ["x"], ready_tcp = "web1:http" }]`, "certificate[0].prepare_helpers[0].ready_tcp", "not host:port"},
		{`prepare_helpers = [{ command = ["x"], ready_url = "ftp://a/" }]`, "certificate[0].prepare_helpers[0].ready_url", "not an http:// or https:// URL"},
		{`prepare_helpers = [{ command = ["x"], ready_line = "(" }]`, "certificate[0].prepare_helpers[0].ready_line", "not a regular expression"},
		{`prepare_helpers = [{ command = ["x"], ready_line = "a", ready_tcp = "a:1" }]`, "certificate[0].prepare_helpers[0].ready_line", "one readiness check"},
		{`prepare_helpers = [{ command = ["x"], stop_grace = "0s" }]`, "certificate[0].prepare_helpers[0].stop_grace", "longer than 0"},
		{`prepare_helpers = [{ command = ["x"], ready_timeout = "soon" }]`, "certificate[0].prepare_helpers[0].ready_timeout", "invalid duration"},
		{`prepare_helpers = [{ command = ["x"], per_name = "yes" }]`, "certificate[0].prepare_helpers[0].per_name", "true or false"},
		{`prepare_helpers = [{ command = ["x"], ready = "a:80" }]`, "certificate[0].prepare_helpers[0].ready", "unknown key"},
		{`prepare_helpers = ["ssh web1"]`, "certificate[0].prepare_helpers[0]", "must be a table"},
	} {
		p := mustProblems(t, cert+tc.src+"\n")
		if len(p) != 1 || p[0].Field != tc.field || p[0].Line != 5 || !strings.Contains(p[0].Message, tc.want) {
			t.Errorf("%s: problems %+v, want one at line 5, %s, saying %q", tc.src, p, tc.field, tc.want)
		}
	}
}

func TestActionsDecode(t *testing.T) {
	cfg := mustParse(t, ca+`
[deploy]
commands = [["systemctl", "reload", "haproxy"]]

[[deploy.action]]
name = "mail servers"
identifiers = ["Mail.Example.org", "*.dev.example.org", "bücher.example"]
commands = [["ssh", "mail1", "systemctl reload postfix dovecot"]]

[[deploy.action]]
unmatched = true
commands = [["systemctl", "reload", "nginx"]]
`)
	want := []Action{
		{Name: "mail servers", Identifiers: []string{"mail.example.org", "*.dev.example.org", "xn--bcher-kva.example"},
			Commands: [][]string{{"ssh", "mail1", "systemctl reload postfix dovecot"}}},
		{Name: "action 2", Unmatched: true, Commands: [][]string{{"systemctl", "reload", "nginx"}}},
	}
	if !reflect.DeepEqual(cfg.Deploy.Actions, want) {
		t.Errorf("actions %+v,\nwant %+v", cfg.Deploy.Actions, want)
	}
}

func TestActionsProblems(t *testing.T) {
	for _, tc := range []struct {
		src, field, want string
	}{
		{"identifiers = [\"a.example\"]", "deploy.action[0].commands", "required"},
		{"identifiers = [\"a.example\"]\ncommands = []", "deploy.action[0].commands", "required"},
		{"commands = [[\"x\"]]", "deploy.action[0].identifiers", "required"},
		{"identifiers = []\ncommands = [[\"x\"]]", "deploy.action[0].identifiers", "empty"},
		{"identifiers = [\"a.example\"]\nunmatched = true\ncommands = [[\"x\"]]", "deploy.action[0].identifiers", "remove identifiers, or unmatched"},
		{"identifiers = [\"a b.example\"]\ncommands = [[\"x\"]]", "deploy.action[0].identifiers[0]", ""},
		{"identifiers = [\"mail*.bü.example\"]\ncommands = [[\"x\"]]", "deploy.action[0].identifiers[0]", "xn--"},
		{"domains = [\"a.example\"]\nidentifiers = [\"a.example\"]\ncommands = [[\"x\"]]", "deploy.action[0].domains", "did you mean identifiers"},
		{"name = \"\"\nidentifiers = [\"a.example\"]\ncommands = [[\"x\"]]", "deploy.action[0].name", "not a name"},
	} {
		p := mustProblems(t, ca+"[[deploy.action]]\n"+tc.src+"\n")
		if len(p) != 1 || p[0].Field != tc.field || p[0].Line == 0 || !strings.Contains(p[0].Message, tc.want) {
			t.Errorf("%q: problems %+v, want one at %s saying %q", tc.src, p, tc.field, tc.want)
		}
	}
	p := mustProblems(t, ca+"[[deploy.action]]\nunmatched = true\ncommands = [[\"x\"]]\n[[deploy.action]]\nunmatched = true\ncommands = [[\"y\"]]\n")
	if len(p) != 1 || p[0].Field != "deploy.action[1].unmatched" || p[0].Line != 7 {
		t.Errorf("two unmatched actions: %+v", p)
	}
}

func TestOutputPathControlCharacters(t *testing.T) {
	p := mustProblems(t, ca+"[[certificate]]\nidentifiers = [\"a.example\"]\noutput_dir = \"/etc/live/a\\tb\"\n")
	if len(p) != 1 || !strings.Contains(p[0].Message, "control character") {
		t.Errorf("problems %+v", p)
	}
}

func TestExampleActions(t *testing.T) {
	cfg, err := Load("../examples/certfleet.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Action{
		{Name: "mail servers", Identifiers: []string{"mail.example.org", "*.dev.example.org"}, Commands: [][]string{{"ssh", "mail1", "systemctl reload postfix dovecot"}}},
		{Name: "action 2", Unmatched: true, Commands: [][]string{{"systemctl", "reload", "nginx"}}},
	}
	if !reflect.DeepEqual(cfg.Deploy.Actions, want) {
		t.Errorf("example actions %+v, want %+v", cfg.Deploy.Actions, want)
	}
}
