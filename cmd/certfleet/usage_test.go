package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmallThingsOfIssue15 (finding 8): the command list is aligned
// however long a name is; a command without flags prints no empty Flags
// section; agent --help names a command that exists; status before the
// first run says so and creates no store.
func TestSmallThingsOfIssue15(t *testing.T) {
	_, out, errOut := runCLI(t)
	col := -1
	for _, l := range strings.Split(out+errOut, "\n") {
		if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "  certfleet") {
			continue
		}
		name := strings.Fields(l)[0]
		at := strings.Index(l[2+len(name):], strings.Fields(l)[1]) + 2 + len(name)
		if col == -1 {
			col = at
		} else if at != col {
			t.Errorf("summary of %s starts at column %d, the first one's at %d:\n%s", name, at, col, out+errOut)
		}
	}
	if _, out, _ := runCLI(t, "version", "--help"); strings.Contains(out, "Flags:") {
		t.Errorf("version --help has an empty Flags section:\n%s", out)
	}
	if _, out, _ := runCLI(t, "agent", "--help"); strings.Contains(out, "-fleet") {
		t.Errorf("agent --help points to a flag that does not exist:\n%s", out)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "certfleet.toml")
	os.WriteFile(cfg, []byte("state = \"state.db\"\n[ca]\ndirectory = \"letsencrypt\"\n[[certificate]]\nidentifiers = [\"a.example.org\"]\noutput_dir = \"\"\n"), 0o600)
	code, out, errOut := runCLI(t, "status", "-config", cfg)
	if code != 0 || !strings.Contains(out, "no store yet") {
		t.Errorf("status before the first run: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
		t.Error("status created the store")
	}
}
