package agent_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/httpapi"
)

// TestAgentStartRemovesLeftTempFiles is issue 16's sixth finding on the
// host side: an agent killed mid-write left .privkey.pem.tmp-* beside the
// key (and beside its state). Its start removes its own leftovers, even
// while the server is unreachable, and nothing else.
func TestAgentStartRemovesLeftTempFiles(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	files := filepath.Join(dir, "tls")
	for _, d := range []string{state, files} {
		if err := os.MkdirAll(d, 0o700); err != nil {
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
	left := []string{mk(filepath.Join(files, ".privkey.pem.tmp-3141592653")), mk(filepath.Join(files, ".fullchain.pem.tmp-1"))}
	kept := []string{mk(filepath.Join(files, ".privkey.pem.bak")), mk(filepath.Join(files, ".cert.pem.tmp-1"))} // cert.pem is not written
	a, err := agent.New(agent.Config{Name: "host", Client: &httpapi.Client{BaseURL: "http://127.0.0.1:1", Token: "x"}, StateDir: state,
		Certificates: []agent.Certificate{{Name: "web.example", Files: agent.Files{
			Fullchain: filepath.Join(files, "fullchain.pem"), Key: filepath.Join(files, "privkey.pem")}}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Once(t.Context()) // the server is unreachable: that fails, after the clean-up
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
