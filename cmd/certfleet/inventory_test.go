package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInventoryDiff: `certfleet inventory diff` shows what a source would
// add and skip, before it is switched on (the config file's certificates
// count, though never synced yet), and changes nothing.
func TestInventoryDiff(t *testing.T) {
	dir := t.TempDir()
	confd := filepath.Join(dir, "conf.d")
	os.Mkdir(confd, 0o755)
	cfg := filepath.Join(dir, "certfleet.toml")
	os.WriteFile(cfg, []byte(`state = "state.db"
[ca]
directory = "letsencrypt-staging"
[[certificate]]
name = "web"
identifiers = ["web.example.org"]
[inventory.teams]
type = "directory"
dir = "conf.d"
grace = "12h"
`), 0o600)
	os.WriteFile(filepath.Join(confd, "team.toml"), []byte("[[certificate]]\nname = \"api\"\nidentifiers = [\"api.example.org\", \"www.api.example.org\"]\n\n"+
		"[[certificate]]\nname = \"web\"\nidentifiers = [\"web.example.org\"]\n\n"+
		"[[certificate]]\nname = \"bad\"\nidentifiers = [\"*.example.org\"]\n"), 0o644)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("inventory", "diff", "-config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	team := filepath.Join(confd, "team.toml")
	for _, want := range []string{
		"inventory teams (spec source inventory:teams, grace 12h):",
		"  + api  api.example.org www.api.example.org  (ecdsa-p256, http-01)",
		"  ! " + team + `: name: certificate "web" is already declared by the config file`,
		"  ! " + team + `:11: certificate[2].identifiers[0]: wildcard "*.example.org" can only be validated with dns-01`,
		"  1 to add, 0 to change, 0 to withdraw, 0 pending withdrawal, 0 held, 2 entries skipped, 0 unchanged",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output:\n%s\nwant the line %q", out, want)
		}
	}
	// Nothing was synced: a second diff says the same.
	if _, again, _ := run("inventory", "diff", "-config", cfg, "teams"); again != out {
		t.Errorf("the diff changed the store:\n%s\nthen\n%s", out, again)
	}
	if code, _, errs := run("inventory", "diff", "-config", cfg, "nope"); code != 1 || !strings.Contains(errs, `no inventory source "nope"`) {
		t.Errorf("unknown source: exit %d, %s", code, errs)
	}
	if code, _, _ := run("inventory"); code != 2 {
		t.Errorf("no subcommand: exit %d, want 2", code)
	}
}
