package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestStartupRemovesLeftTempFiles is issue 16's sixth finding: a certfleet
// killed (kill -9) between an atomic write's temporary file and its rename
// left .privkey.pem.tmp-* beside the key for good. serve's start removes
// its own leftovers, in the output directory and beside the copies, and
// nothing else.
func TestStartupRemovesLeftTempFiles(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "haproxy", "web.pem")
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
copy = [{ path = %q, content = "combined" }]
`, copyPath))
	out := filepath.Join(dir, "live", "web")
	for _, d := range []string{out, filepath.Dir(copyPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	mk := func(p string) string {
		t.Helper()
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
		return p
	}
	left := []string{
		mk(filepath.Join(out, ".privkey.pem.tmp-2840217645")),
		mk(filepath.Join(out, ".fullchain.pem.tmp-17")),
		mk(filepath.Join(filepath.Dir(copyPath), ".web.pem.tmp-99120")),
	}
	kept := []string{
		mk(filepath.Join(out, "notes.tmp-1")),
		mk(filepath.Join(filepath.Dir(copyPath), ".other.pem.tmp-5")),
		mk(filepath.Join(dir, ".privkey.pem.tmp-123")), // not a directory certfleet writes to
	}
	daemontest.OpenDaemon(t, path, nil)
	for _, p := range left {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the start", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
