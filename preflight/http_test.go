package preflight

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/porttest"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/sqlite"
)

// loadConfig writes src as a configuration file and loads it.
func mustLoadConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "certfleet.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// freePort returns a loopback port nothing listens on, reserved for t.
func freePort(t *testing.T) int { return porttest.Free(t) }

// TestCheckWebroot guards issue 15, finding 5: with only webroot
// certificates certfleet check printed nothing and exited 0. Now it
// writes a probe file into the web root and fetches it through the name,
// as the CA would: ok when the web server serves that web root, FAIL when
// it serves another directory.
func TestCheckWebroot(t *testing.T) {
	served, other := t.TempDir(), t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(served))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name, root string
		fail       int
		want       string
	}{
		{"served", served, 0, "ok    127.0.0.1"},
		{"another directory", other, 1, "FAIL  127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoadConfig(t, fmt.Sprintf("[ca]\ndirectory = \"letsencrypt\"\n[self_test]\nhttp_port = %d\n"+
				"[[certificate]]\nidentifiers = [\"127.0.0.1\"]\nchallenge = \"webroot\"\nwebroot = %q\n", port, tc.root))
			var out bytes.Buffer
			c := &Checker{Config: cfg, Out: &out}
			if failed := c.Run(t.Context()); failed != tc.fail || !strings.Contains(out.String(), tc.want) || !strings.Contains(out.String(), "webroot") {
				t.Fatalf("check: %d failed, output:\n%s\nwant %d failed and %q", failed, out.String(), tc.fail, tc.want)
			}
			if entries, _ := os.ReadDir(filepath.Join(tc.root, ".well-known", "acme-challenge")); len(entries) != 0 {
				t.Errorf("the probe file was left in the web root: %v", entries)
			}
		})
	}
}

// TestCheckHTTP01WithoutServe guards issue 15, finding 5: the http-01
// check worked only while certfleet serve ran. Without it, check starts a
// temporary responder on the configured [http01] listen address for the
// check, and says so; the probe passes through it.
func TestCheckHTTP01WithoutServe(t *testing.T) {
	port := freePort(t)
	cfg := mustLoadConfig(t, fmt.Sprintf("[ca]\ndirectory = \"letsencrypt\"\n[http01]\nlisten = \"127.0.0.1:%d\"\n[self_test]\nhttp_port = %d\n"+
		"[[certificate]]\nidentifiers = [\"127.0.0.1\"]\nchallenge = \"http-01\"\n", port, port))
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var out bytes.Buffer
	c := &Checker{Config: cfg, Out: &out, HTTP01: &http01.Solver{Store: st}}
	if failed := c.Run(t.Context()); failed != 0 || !strings.Contains(out.String(), "temporary http-01 responder") ||
		!strings.Contains(out.String(), "ok    127.0.0.1") {
		t.Fatalf("check without serve: %d failed, output:\n%s", failed, out.String())
	}
	// The temporary responder is gone after the check.
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("the temporary responder still holds its port: %v", err)
	} else {
		ln.Close()
	}
}
