package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
)

func TestMatchIdentifier(t *testing.T) {
	for _, tc := range []struct {
		pattern, id string
		want        bool
	}{
		{"mail.example.org", "mail.example.org", true},
		{"mail.example.org", "MAIL.Example.org", true},
		{"mail.example.org", "mail.example.org.evil", false},
		{"*.example.org", "www.example.org", true},
		{"*.example.org", "a.b.example.org", true},
		{"*.example.org", "*.example.org", true},
		{"*.example.org", "example.org", false},
		{"*.example.org", "wwwexample.org", false},
		{"mail*.example.org", "mail2.example.org", true},
		{"mail*.example.org", "smtp.example.org", false},
		{"*", "anything.example", true},
		{"*.*.example.org", "a.b.example.org", true},
		{"*.*.example.org", "a.example.org", false},
		{"2001:db8::*", "2001:db8::10", true},
	} {
		if got := deploy.MatchIdentifier(tc.pattern, tc.id); got != tc.want {
			t.Errorf("MatchIdentifier(%q, %q) = %v, want %v", tc.pattern, tc.id, got, tc.want)
		}
	}
}

// TestBatchActions is issue 20's actions keyed on identifiers: an action
// runs once for the certificates it matches and not for others, an
// unmatched action for those with an identifier no action names (lematt's
// [default]), all before the [deploy] commands, each with the batch
// variables of its own certificates; a failing action does not keep the
// rest from running; test mode prints them.
func TestBatchActions(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	record := func(tag string) []string {
		return []string{"sh", "-c", `printf '%s|%s|%s|%s|%s|%s|%s\n' "$1" "$CERTFLEET_ACTION" "$CERTFLEET_CHANGED" "$CERTFLEET_DOMAINS_CN" "$CERTFLEET_DOMAINS_ALL" "$CERTFLEET_CERTIFICATE" "$(cut -f1,3 "$CERTFLEET_CHANGED_FILE" | tr '\t\n' ': ')" >> "$2"`, "sh", tag, log}
	}
	actions := []deploy.Action{
		{Name: "mail", Identifiers: []string{"mail.example.org", "*.dev.example.org"}, Commands: [][]string{record("mail")}},
		{Name: "nothing", Identifiers: []string{"none.example.org"}, Commands: [][]string{record("nothing")}},
		{Name: "broken", Identifiers: []string{"mail.example.org"}, Commands: [][]string{{"sh", "-c", "exit 4"}, record("after-failure")}},
		{Name: "default", Unmatched: true, Commands: [][]string{record("default")}},
	}
	b := &deploy.Batch{Writer: &deploy.Writer{}, Actions: func() []deploy.Action { return actions },
		Commands: func() [][]string { return [][]string{record("deploy")} }}
	note := func(name string, ids ...string) {
		b.Note(deploy.Change{Name: name, Identifiers: ids, CertFiles: []string{"/c/" + name}, KeyFiles: []string{"/k/" + name},
			Env: certfleet.ChildEnv(os.Environ(), "CERTFLEET_CERTIFICATE="+name)})
	}
	note("mail", "mail.example.org")
	note("dev", "a.dev.example.org", "b.dev.example.org")
	note("www", "example.org", "www.example.org")
	note("mixed", "x.dev.example.org", "shop.example.org")
	err := b.Flush(t.Context())
	if err == nil || !strings.Contains(err.Error(), "[[deploy.action]] broken") || !strings.Contains(err.Error(), "exit status 4") {
		t.Errorf("Flush: %v, want the broken action's failure", err)
	}
	got, _ := os.ReadFile(log)
	want := "mail|mail|mail dev mixed|mail.example.org a.dev.example.org x.dev.example.org|mail.example.org a.dev.example.org b.dev.example.org x.dev.example.org shop.example.org|mixed|" +
		"cn:mail.example.org name:mail.example.org cert:/c/mail key:/k/mail " +
		"cn:a.dev.example.org name:a.dev.example.org name:b.dev.example.org cert:/c/dev key:/k/dev " +
		"cn:x.dev.example.org name:x.dev.example.org name:shop.example.org cert:/c/mixed key:/k/mixed \n" +
		"default|default|www mixed|example.org x.dev.example.org|example.org www.example.org x.dev.example.org shop.example.org|mixed|" +
		"cn:example.org name:example.org name:www.example.org cert:/c/www key:/k/www " +
		"cn:x.dev.example.org name:x.dev.example.org name:shop.example.org cert:/c/mixed key:/k/mixed \n" +
		"deploy||mail dev www mixed|mail.example.org a.dev.example.org example.org x.dev.example.org|" +
		"mail.example.org a.dev.example.org b.dev.example.org example.org www.example.org x.dev.example.org shop.example.org|mixed|" +
		"cn:mail.example.org name:mail.example.org cert:/c/mail key:/k/mail " +
		"cn:a.dev.example.org name:a.dev.example.org name:b.dev.example.org cert:/c/dev key:/k/dev " +
		"cn:example.org name:example.org name:www.example.org cert:/c/www key:/k/www " +
		"cn:x.dev.example.org name:x.dev.example.org name:shop.example.org cert:/c/mixed key:/k/mixed \n"
	if string(got) != want {
		t.Errorf("ran:\n%s\nwant:\n%s", got, want)
	}

	// Only www changes: the mail action does not run.
	os.Remove(log)
	note("www", "example.org", "www.example.org")
	b.Flush(t.Context())
	got, _ = os.ReadFile(log)
	var tags []string
	for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		tags = append(tags, strings.SplitN(l, "|", 2)[0])
	}
	if strings.Join(tags, " ") != "default deploy" {
		t.Errorf("with only www changed, ran %q; want default deploy", tags)
	}

	// Test mode prints what would run, for whom.
	var printed strings.Builder
	b.Print = &printed
	note("dev", "a.dev.example.org")
	b.Flush(t.Context())
	if out := printed.String(); !strings.Contains(out, "[[deploy.action]] mail (dev)") || !strings.Contains(out, "[deploy] (dev)") || strings.Contains(out, "default") {
		t.Errorf("test mode printed:\n%s", out)
	}
}

// TestBatchMergesAndBounds: the two key types of one certificate are one
// change with both sets of files, and a list too long for an environment
// is left out of it (the list file still has it) instead of making the
// command fail to start.
func TestBatchMergesAndBounds(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	cmd := []string{"sh", "-c", `echo "$CERTFLEET_CHANGED|$CERTFLEET_CERTS|$CERTFLEET_KEYS|${CERTFLEET_DOMAINS_ALL+set}|$(grep -c '^name' "$CERTFLEET_CHANGED_FILE")" >> "$1"`, "sh", log}
	b := &deploy.Batch{Writer: &deploy.Writer{}, Commands: func() [][]string { return [][]string{cmd} }}
	b.Note(deploy.Change{Name: "dual", Identifiers: []string{"a.example"}, CertFiles: []string{"/ecdsa/cert.pem"}, KeyFiles: []string{"/ecdsa/privkey.pem"}})
	b.Note(deploy.Change{Name: "dual", Identifiers: []string{"a.example"}, CertFiles: []string{"/rsa/cert.pem"}, KeyFiles: []string{"/rsa/privkey.pem"}})
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(log); string(got) != "dual|/ecdsa/cert.pem /rsa/cert.pem|/ecdsa/privkey.pem /rsa/privkey.pem|set|1\n" {
		t.Errorf("merged change seen as %q", got)
	}

	os.Remove(log)
	ids := make([]string, 0, 6000)
	for i := range cap(ids) {
		ids = append(ids, fmt.Sprintf("host-%05d.example.org", i)) // 132 kB: over Linux's 128 KiB per string
	}
	b.Note(deploy.Change{Name: "huge", Identifiers: ids})
	if err := b.Flush(t.Context()); err != nil {
		t.Fatalf("a batch with a long identifier list: %v", err)
	}
	if got, _ := os.ReadFile(log); string(got) != "huge||||6000\n" {
		t.Errorf("long batch seen as %q", got)
	}
}
