package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEventsParsed(t *testing.T) {
	cfg := mustParse(t, ca+`
[events.hooks.ops]
type = "webhook"
url = "https://hooks.example.org/certfleet/XXXXSECRET"
secret_file = "hook-secret"
types = ["issued", "renewed", "failed", "issued"]
certificates = ["web*", "mail"]

[events.hooks.inventory]
type = "socket"
socket = "/run/inventory/events.sock"
ack = true
timeout = "3s"

[events.hooks.ldap]
type = "command"
command = ["/usr/local/lib/certfleet/ldap-writeback", "ldap://127.0.0.1"]
types = ["issued", "renewed"]
`)
	want := map[string]Hook{
		"ops": {Type: HookWebhook, URL: "https://hooks.example.org/certfleet/XXXXSECRET", SecretFile: "/etc/certfleet/hook-secret",
			Types: []string{"issued", "renewed", "failed"}, Certificates: []string{"web*", "mail"}, Timeout: DefaultHookWebhookTimeout},
		"inventory": {Type: HookSocket, Socket: "/run/inventory/events.sock", Ack: true, Timeout: 3 * time.Second},
		"ldap": {Type: HookCommand, Command: []string{"/usr/local/lib/certfleet/ldap-writeback", "ldap://127.0.0.1"},
			Types: []string{"issued", "renewed"}, Timeout: DefaultHookCommandTimeout},
	}
	if !reflect.DeepEqual(cfg.Events.Hooks, want) {
		t.Errorf("Events.Hooks =\n%+v\nwant\n%+v", cfg.Events.Hooks, want)
	}
	if got := cfg.Events.HookNames(); strings.Join(got, " ") != "inventory ldap ops" {
		t.Errorf("HookNames = %v", got)
	}
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Events.Hooks) != 0 || len(cfg.Events.Hooks) != 3 {
		t.Errorf("staging hooks = %+v (production keeps %d); want none: a rehearsal tells no receiver", st.Events.Hooks, len(cfg.Events.Hooks))
	}
}

func TestEventsProblems(t *testing.T) {
	const secret = "XXXXSECRET"
	webhook := "type = \"webhook\"\nurl = \"https://x.example/h\"\nsecret_file = \"/s\"\n"
	for _, tc := range []struct{ src, want string }{
		{"", "events.hooks.h.type: required"},
		{"type = \"email\"\n", "events.hooks.h.type: unknown hook type \"email\""},
		{"type = \"webhook\"\nsecret_file = \"/s\"\n", "events.hooks.h.url: required for a webhook"},
		{"type = \"webhook\"\nurl = \"https://x.example/\"\n", "events.hooks.h.secret_file: required for a webhook"},
		{"type = \"webhook\"\nurl = \"ftp://x.example/" + secret + "\"\nsecret_file = \"/s\"\n", "events.hooks.h.url: not an http:// or https:// URL"},
		{"type = \"webhook\"\nurl = \"https://u:" + secret + "@x.example/\"\nsecret_file = \"/s\"\n", "events.hooks.h.url: must not hold a user or password"},
		{webhook + "socket = \"/run/s\"\n", "events.hooks.h.socket: socket is for hooks of type \"socket\", not \"webhook\""},
		{webhook + "types = [\"renewd\"]\n", "events.hooks.h.types[0]: unknown event type \"renewd\""},
		{webhook + "types = []\n", "events.hooks.h.types: empty"},
		{webhook + "certificates = [\"[web\"]\n", "events.hooks.h.certificates[0]: \"[web\" is not a name pattern"},
		{webhook + "timeout = \"soon\"\n", "events.hooks.h.timeout: invalid duration"},
		{webhook + "retries = 3\n", "events.hooks.h.retries: unknown key retries"},
		{"type = \"socket\"\n", "events.hooks.h.socket: required for a socket hook"},
		{"type = \"socket\"\nsocket = \"/s\"\nack = \"yes\"\n", "events.hooks.h.ack: must be true or false"},
		{"type = \"command\"\n", "events.hooks.h.command: required for a command hook"},
		{"type = \"command\"\ncommand = []\n", "events.hooks.h.command: empty command"},
		{"type = \"command\"\ncommand = [\"/bin/x\"]\nurl = \"https://x.example/\"\n", "events.hooks.h.url: url is for hooks of type \"webhook\""},
	} {
		problems := mustProblems(t, ca+"[events.hooks.h]\n"+tc.src)
		var all []string
		for _, p := range problems {
			all = append(all, p.String())
		}
		text := strings.Join(all, "\n")
		if len(problems) != 1 || !strings.Contains(text, tc.want) || !strings.Contains(text, "certfleet.toml:") {
			t.Errorf("%q:\n got %s\nwant one problem with %q", tc.src, text, tc.want)
		}
		if strings.Contains(text, secret) {
			t.Errorf("%q: the problem shows the secret in the URL: %s", tc.src, text)
		}
	}
	problems := mustProblems(t, ca+"[events.hooks.Ops]\ntype = \"socket\"\nsocket = \"/s\"\n")
	if len(problems) != 1 || !strings.Contains(problems[0].String(), "hook name \"Ops\"") {
		t.Errorf("bad hook name: %v", problems)
	}
	problems = mustProblems(t, ca+"[events]\nhook = 1\n")
	if len(problems) != 1 || !strings.Contains(problems[0].String(), "events.hook: unknown key hook") {
		t.Errorf("unknown key in [events]: %v", problems)
	}
}
