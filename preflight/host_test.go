package preflight

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/config"
)

// TestCheckReportsOutputs (issue 15, finding 2): certfleet check reports
// what serve and issue would refuse to write, with file and line, before
// anything is ordered.
func TestCheckReportsOutputs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "certfleet.toml")
	src := "[ca]\ndirectory = \"letsencrypt\"\n[[certificate]]\nidentifiers = [\"a.example.org\"]\noutput_dir = \"out\"\nowner = \"certfleet-no-such-user\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := &Checker{Config: cfg, Out: &out}
	if failed := c.Run(t.Context()); failed != 1 || !strings.Contains(out.String(), "certfleet.toml:6") ||
		!strings.Contains(out.String(), `user "certfleet-no-such-user" does not exist`) {
		t.Fatalf("check: %d failed\n%s; want the owner, with its line", failed, out.String())
	}
}
