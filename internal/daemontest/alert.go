package daemontest

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// AlertReceiver is a real HTTP server receiving the alert webhook's JSON;
// it accepts only the bearer token AlertsSection configures.
type AlertReceiver struct {
	mu  sync.Mutex // guards got
	got []alert.Notification
	srv *httptest.Server
}

// NewAlertReceiver starts an AlertReceiver, closed when the test ends.
func NewAlertReceiver(t testing.TB) *AlertReceiver {
	r := &AlertReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n alert.Notification
		if err := json.NewDecoder(req.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Header.Get("Authorization") != "Bearer hook-secret" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// Notifications returns the notifications received so far.
func (r *AlertReceiver) Notifications() []alert.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// Close shuts the receiver down: the webhook goes down.
func (r *AlertReceiver) Close() { r.srv.Close() }

// States lists the notifications as "state/severity".
func (r *AlertReceiver) States() []string {
	var out []string
	for _, n := range r.Notifications() {
		out = append(out, n.State+"/"+string(n.Severity))
	}
	return out
}

// Want fails the test unless the notifications so far are want (as
// "state/severity"), and returns them.
func (r *AlertReceiver) Want(t testing.TB, want ...string) []alert.Notification {
	t.Helper()
	if got := r.States(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("webhook got %v, want %v", got, want)
	}
	return r.Notifications()
}

// AlertsSection is an [alerts] table sending to r, with a bearer token file
// in dir, and extra lines appended.
func AlertsSection(t testing.TB, dir string, r *AlertReceiver, extra string) string {
	t.Helper()
	tok := filepath.Join(dir, "alert-token")
	if err := os.WriteFile(tok, []byte("hook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[alerts]\nwebhook_url = %q\nwebhook_bearer_token_file = %q\nwebhook_retries = 0\n%s", r.srv.URL+"/hook", tok, extra)
}

// BreakableFront serves on listenPort what targetPort serves (the
// certificate's http-01 responder), until the returned switch is set: then
// fail answers instead, so validation fails for real at the CA.
func BreakableFront(t testing.TB, listenPort, targetPort int, fail func(w http.ResponseWriter)) *atomic.Bool {
	t.Helper()
	var broken atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", targetPort)})
	front := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			fail(w)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", listenPort))
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(ln)
	t.Cleanup(func() { front.Close() })
	return &broken
}

// BreakWebRenewal changes the config's "web" certificate so that its next
// order fails validation for real: a name added (a new order, due now),
// validated through a web root nobody serves.
func BreakWebRenewal(t testing.TB, path string) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(text), `identifiers = ["web.certfleet.test"]`,
		fmt.Sprintf("identifiers = [\"web.certfleet.test\", \"www.web.certfleet.test\"]\nchallenge = \"webroot\"\nwebroot = %q", t.TempDir()), 1)
	if broken == string(text) {
		t.Fatal("BreakWebRenewal: the config has no web certificate to change")
	}
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
}

// OpenDaemon opens the daemon of the config file at path with its
// responders, closed when the test ends; with clk, on that clock, set to
// now once the config's certificates are synced (so they are due).
func OpenDaemon(t testing.TB, path string, clk *Clock) *daemon.Daemon {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := daemon.Options{StartResponders: true, Instance: "alerts-test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if clk != nil {
		opts.Now = clk.Now
	}
	d, err := daemon.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if clk != nil {
		clk.Set(time.Now()) // the specs synced just now are due
	}
	return d
}

// RunOnce runs one scheduler pass of d and returns what it issued and
// failed.
func RunOnce(t testing.TB, d *daemon.Daemon) (issued, failed int) {
	t.Helper()
	rep, err := d.Manager.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		t.Logf("run at %s: %+v", d.Manager.Now(), r)
	}
	return rep.Issued, rep.Failed
}

// AlertRound runs one round of d's alert evaluator.
func AlertRound(t testing.TB, d *daemon.Daemon) alert.Report {
	t.Helper()
	rep, err := d.Alerts.Round(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Current returns the current ECDSA P-256 certificate of the certificate
// name in d's store.
func Current(t testing.TB, d *daemon.Daemon, name string) certfleet.Issuance {
	t.Helper()
	j, err := d.Store.Job(t.Context(), certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256})
	if err != nil || j.CurrentID == 0 {
		t.Fatalf("job %s: %+v, %v", name, j, err)
	}
	iss, err := d.Store.Issuance(t.Context(), j.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// WriteWebAlertsConfig writes a config (WriteConfig, in a new temporary
// directory) with one certificate, "web" for web.certfleet.test plus the
// lines of webExtra, and an [alerts] table that sends to a new
// AlertReceiver (AlertsSection with alertsExtra). It returns the config's
// path and the receiver.
func WriteWebAlertsConfig(t testing.TB, ca *pebbleca.CA, httpPort int, webExtra, alertsExtra string) (string, *AlertReceiver) {
	t.Helper()
	dir := t.TempDir()
	recv := NewAlertReceiver(t)
	path := WriteConfig(t, dir, ca, httpPort, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+webExtra+AlertsSection(t, dir, recv, alertsExtra))
	return path, recv
}
