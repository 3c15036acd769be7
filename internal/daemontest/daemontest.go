// Package daemontest holds helpers for tests that run a configured
// certfleet, in process (package daemon) or through its command line
// (cmd/certfleet): an in-process Pebble with the port its http-01
// validation dials, a config file that points at it, a DNS server with a
// Pebble that validates through it, a receiver of alert webhooks, a clock
// the daemon reads, ways to make validation fail for real, and the test
// binary in other roles (RunRole): a TCP forwarder for prepare helpers, and
// a certfleet in a process of its own for a test to kill.
//
// It is imported from _test.go files only. It starts real components (no
// fakes); the daemon itself is the caller's (or OpenDaemon's) to open.
package daemontest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/internal/porttest"
)

// StartCA starts an in-process Pebble whose http-01 validation dials the
// returned loopback port, closed when the test ends.
func StartCA(t testing.TB) (*pebbleca.CA, int) {
	t.Helper()
	port := FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port})
	if err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() { ca.Close() })
	return ca, port
}

// FreePort returns a loopback port nothing listens on, reserved for t
// until it ends (porttest.Free): neither the kernel nor another test
// process hands it out before the server it is meant for binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	return porttest.Free(t)
}

// SelfTestSection is the [self_test] table of a config for ca: names
// resolved through the DNS server the CA's validator asks, probed on the
// ports it dials (httpPort, tlsPort; 0 leaves a port at its default), so
// the self-test before each order sees what the CA will see. Self-tests
// are on by default (docs/readiness.md); a test's names resolve only in
// the CA's DNS, not in the machine's.
func SelfTestSection(ca *pebbleca.CA, httpPort, tlsPort int) string {
	s := fmt.Sprintf("[self_test]\nresolvers = [%q]\n", ca.ResolverAddr())
	if httpPort != 0 {
		s += fmt.Sprintf("http_port = %d\n", httpPort)
	}
	if tlsPort != 0 {
		s += fmt.Sprintf("tls_port = %d\n", tlsPort)
	}
	return s
}

// WriteConfig writes dir/certfleet.toml for an in-process Pebble, with the
// http-01 responder on httpPort (the tls-alpn-01 one off), a SQLite state
// and outputs under dir, and certs appended (certificate tables and any
// other section), and returns its path. Unless certs has a [self_test]
// table of its own, the file gets SelfTestSection's.
func WriteConfig(t testing.TB, dir string, ca *pebbleca.CA, httpPort int, certs string) string {
	t.Helper()
	roots := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(roots, ca.TLSRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state = "state.db"
[log]
level = "debug"
[ca]
directory = %q
trusted_roots = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = ""
[defaults]
output_dir = "live"
%s`, ca.DirectoryURL(), roots, httpPort, certs)
	if !strings.Contains(certs, "[self_test]") {
		cfg += "\n" + SelfTestSection(ca, httpPort, 0)
	}
	path := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// CACertStatus asks Pebble's management API what it knows of a serial:
// "Valid" or "Revoked", and the revocation reason (RFC 5280 §5.3.1 code;
// -1 when none).
func CACertStatus(t testing.TB, ca *pebbleca.CA, serial string) (status string, reason int) {
	t.Helper()
	resp, err := ca.HTTPClient().Get(ca.ManagementURL() + "/cert-status-by-serial/" + serial)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cert-status-by-serial/%s: %s", serial, resp.Status)
	}
	var st struct {
		Status string
		Reason *int
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	reason = -1
	if st.Reason != nil {
		reason = *st.Reason
	}
	return st.Status, reason
}

// Clock is a daemon's clock (daemon.Options.Now): the manager and the
// alert evaluator see time pass without the test waiting for it.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { c := &Clock{}; c.Set(t); return c }

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// SyncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
