package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
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
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// alertReceiver is a real HTTP server receiving the alert webhook's JSON.
type alertReceiver struct {
	mu  sync.Mutex
	got []alert.Notification
	srv *httptest.Server
}

func newAlertReceiver(t *testing.T) *alertReceiver {
	r := &alertReceiver{}
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

func (r *alertReceiver) notifications() []alert.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// states lists the notifications as "state/severity".
func (r *alertReceiver) states() []string {
	var out []string
	for _, n := range r.notifications() {
		out = append(out, n.State+"/"+string(n.Severity))
	}
	return out
}

func (r *alertReceiver) want(t *testing.T, want ...string) []alert.Notification {
	t.Helper()
	if got := r.states(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("webhook got %v, want %v", got, want)
	}
	return r.notifications()
}

// alertsSection is an [alerts] table sending to r, with a bearer token file
// in dir.
func alertsSection(t *testing.T, dir string, r *alertReceiver, extra string) string {
	t.Helper()
	tok := filepath.Join(dir, "alert-token")
	if err := os.WriteFile(tok, []byte("hook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[alerts]\nwebhook_url = %q\nwebhook_bearer_token_file = %q\nwebhook_retries = 0\n%s", r.srv.URL+"/hook", tok, extra)
}

// alertClock is the daemon's clock (DaemonOptions.Now): the manager and the
// alert evaluator see time pass without the test waiting for it. The CA,
// the certificates and the failures are real.
type alertClock struct{ ns atomic.Int64 }

func (c *alertClock) Now() time.Time        { return time.Unix(0, c.ns.Load()) }
func (c *alertClock) Set(t time.Time)       { c.ns.Store(t.UnixNano()) }
func newAlertClock(t time.Time) *alertClock { c := &alertClock{}; c.Set(t); return c }

func openAlertDaemon(t *testing.T, path string, clk *alertClock) *Daemon {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := DaemonOptions{StartResponders: true, Instance: "alerts-test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if clk != nil {
		opts.Now = clk.Now
	}
	d, err := OpenDaemon(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if clk != nil {
		clk.Set(time.Now()) // the specs synced just now are due
	}
	return d
}

// breakableFront serves on listenPort what targetPort serves (the
// certificate's http-01 responder), until the returned switch is set: then
// fail answers instead, so validation fails for real at the CA.
func breakableFront(t *testing.T, listenPort, targetPort int, fail func(w http.ResponseWriter)) *atomic.Bool {
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

// breakWebRenewal changes the config's "web" certificate so that its next
// order fails validation for real: a name added (a new order, due now),
// validated through a web root nobody serves.
func breakWebRenewal(t *testing.T, path string) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(text), `identifiers = ["web.certfleet.test"]`,
		fmt.Sprintf("identifiers = [\"web.certfleet.test\", \"www.web.certfleet.test\"]\nchallenge = \"webroot\"\nwebroot = %q", t.TempDir()), 1)
	if broken == string(text) {
		t.Fatal("breakWebRenewal: the config has no web certificate to change")
	}
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
}

func alertRunOnce(t *testing.T, d *Daemon) (issued, failed int) {
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

func alertRound(t *testing.T, d *Daemon) alert.Report {
	t.Helper()
	rep, err := d.Alerts.Round(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func alertCurrent(t *testing.T, d *Daemon, name string) certfleet.Issuance {
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

// TestAlertsOnValidationFailure: renewals that Pebble refuses because the
// http-01 answer is wrong (a front server in the CA's path answers with a
// wrong key authorization) open one incident, notified once over many
// rounds, worsened once when it turns critical, and resolved once when the
// front is fixed and the renewal succeeds.
func TestAlertsOnValidationFailure(t *testing.T) {
	t.Setenv("PEBBLE_AUTHZREUSE", "0") // every renewal is validated again
	ca, caPort := newTestCA(t)
	respPort := freePort(t)
	broken := breakableFront(t, caPort, respPort, func(w http.ResponseWriter) { io.WriteString(w, "not-the-key-authorization") })

	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, respPort, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+alertsSection(t, dir, recv, ""))
	clk := newAlertClock(time.Now())
	d := openAlertDaemon(t, path, clk)
	if issued, _ := alertRunOnce(t, d); issued != 1 {
		t.Fatal("first issuance failed")
	}
	first := alertCurrent(t, d, "web")
	life := first.NotAfter.Sub(first.NotBefore)
	warning, critical := alert.Settings{}.Warning(life), alert.Settings{}.Critical(life)
	alertRound(t, d)
	recv.want(t)

	broken.Store(true)
	clk.Set(first.NotAfter.Add(-warning + 24*time.Hour))
	if _, failed := alertRunOnce(t, d); failed != 1 {
		t.Fatal("renewal through the broken front did not fail")
	}
	job, _ := d.Store.Job(t.Context(), certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256})
	if !strings.Contains(job.LastError, "unauthorized") && !strings.Contains(job.LastError, "not-the-key-authorization") {
		t.Fatalf("the renewal failed, but not at validation: %s", job.LastError)
	}
	for range 3 {
		alertRound(t, d)
		clk.Set(clk.Now().Add(time.Hour))
	}
	got := recv.want(t, "opened/warning")
	n := got[0]
	if n.Kind != certfleet.IncidentExpiry || n.Certificate != "web" || n.KeyType != certfleet.ECDSAP256 || n.Failures != 1 ||
		n.LastError == "" || n.Serial != first.Serial || !n.NotAfter.Equal(first.NotAfter) {
		t.Errorf("opened notification = %+v", n)
	}
	// Another failure, still a warning: nothing new.
	clk.Set(first.NotAfter.Add(-warning/2 - 24*time.Hour))
	if _, failed := alertRunOnce(t, d); failed != 1 {
		t.Fatal("second renewal did not fail")
	}
	alertRound(t, d)
	recv.want(t, "opened/warning")
	// Critical.
	clk.Set(first.NotAfter.Add(-critical + 12*time.Hour))
	alertRunOnce(t, d)
	alertRound(t, d)
	alertRound(t, d)
	got = recv.want(t, "opened/warning", "worsened/critical")
	if got[1].IncidentID != n.IncidentID || got[1].Failures < 2 || got[1].PreviousSeverity != certfleet.SeverityWarning {
		t.Errorf("worsened notification = %+v", got[1])
	}
	// Fixed: the renewal succeeds and the incident resolves, once.
	broken.Store(false)
	clk.Set(clk.Now().Add(2 * 24 * time.Hour))
	if issued, _ := alertRunOnce(t, d); issued != 1 {
		t.Fatal("renewal after the fix did not succeed")
	}
	for range 3 {
		alertRound(t, d)
	}
	got = recv.want(t, "opened/warning", "worsened/critical", "resolved/critical")
	if got[2].IncidentID != n.IncidentID || got[2].ResolvedAt.IsZero() {
		t.Errorf("resolved notification = %+v", got[2])
	}
}

// caProxy is a TCP proxy in front of the CA's API that can be taken down
// (connection refused) and brought back on the same port.
type caProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool // open client connections, cut when the CA goes down
}

func newCAProxy(t *testing.T, target string) *caProxy {
	p := &caProxy{t: t, target: target, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *caProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("CA proxy: %v", err)
	}
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.conns == nil {
				p.conns = map[net.Conn]bool{}
			}
			p.conns[c] = true
			p.mu.Unlock()
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
}

// down closes the listener and every open connection: new connections are
// refused, kept-alive ones are cut.
func (p *caProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestAlertsOnCADown: with the CA unreachable and expiry_warning longer
// than the certificate's lifetime, the first failed renewal opens an
// incident; it worsens to critical once over many rounds; when the CA is
// back, the renewal succeeds and the incident resolves, once. The CA is
// down in two ways: a TCP proxy in front of Pebble that refuses
// connections, and an HTTPS proxy that answers 503 Service Unavailable.
func TestAlertsOnCADown(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ca, port := newTestCA(t)
		caURL, _ := url.Parse(ca.DirectoryURL())
		proxy := newCAProxy(t, caURL.Host)
		testCAOutage(t, ca, port, "https://"+proxy.addr+caURL.Path, nil, proxy.down, proxy.up, "refused")
	})
	t.Run("503", func(t *testing.T) {
		ca, port := newTestCA(t)
		caURL, _ := url.Parse(ca.DirectoryURL())
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.TLSRootPEM())
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "https", Host: caURL.Host})
		rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		var down atomic.Bool
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				http.Error(w, "upstream maintenance", http.StatusServiceUnavailable)
				return
			}
			rp.ServeHTTP(w, r) // Host stays the proxy's: Pebble's URLs point here
		}))
		srv.StartTLS()
		t.Cleanup(srv.Close)
		proxyRoot := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		testCAOutage(t, ca, port, srv.URL+caURL.Path, proxyRoot,
			func() { down.Store(true) }, func() { down.Store(false) }, "503")
	})
}

// testCAOutage runs TestAlertsOnCADown against the CA reached at
// directory (whose TLS certificate extraRoot signs, when set), taken down
// and up again by down and up; lastError must appear in the failure.
func testCAOutage(t *testing.T, ca *pebbleca.CA, port int, directory string, extraRoot []byte, down, up func(), lastError string) {
	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+alertsSection(t, dir, recv, "expiry_warning = \"400d\"\nexpiry_critical = \"5d\"\n"))
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), ca.DirectoryURL(), directory, 1)), 0o600)
	if extraRoot != nil {
		roots := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(roots, append(ca.TLSRootPEM(), extraRoot...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clk := newAlertClock(time.Now())
	d := openAlertDaemon(t, path, clk)
	if issued, _ := alertRunOnce(t, d); issued != 1 {
		t.Fatal("first issuance through the proxy failed")
	}
	first := alertCurrent(t, d, "web")
	life := first.NotAfter.Sub(first.NotBefore)

	down()
	clk.Set(first.NotBefore.Add(life * 3 / 4))
	if _, failed := alertRunOnce(t, d); failed != 1 {
		t.Fatal("renewal with the CA down did not fail")
	}
	for range 3 {
		alertRound(t, d)
		clk.Set(clk.Now().Add(10 * time.Minute))
	}
	got := recv.want(t, "opened/warning")
	if !strings.Contains(got[0].LastError, lastError) {
		t.Errorf("opened notification's last_error %q does not say %q", got[0].LastError, lastError)
	}
	clk.Set(first.NotAfter.Add(-3 * 24 * time.Hour))
	alertRunOnce(t, d)
	alertRound(t, d)
	alertRound(t, d)
	got = recv.want(t, "opened/warning", "worsened/critical")
	if got[1].Failures <= got[0].Failures {
		t.Errorf("failures did not grow: %d then %d", got[0].Failures, got[1].Failures)
	}
	// (Past NotAfter the fake clock would make the replacement, which the
	// CA dates by the real clock, look expired too: TestServeAlerts covers
	// "expired" in real time.)

	up()
	clk.Set(clk.Now().Add(2 * 24 * time.Hour))
	if issued, _ := alertRunOnce(t, d); issued != 1 {
		t.Fatal("renewal with the CA back did not succeed")
	}
	alertRound(t, d)
	alertRound(t, d)
	recv.want(t, "opened/warning", "worsened/critical", "resolved/critical")

	all, err := d.Store.Incidents(t.Context(), certfleet.IncidentFilter{})
	if err != nil || len(all) != 1 || all[0].Open() || !all[0].ResolutionNotified {
		t.Fatalf("incidents = %+v, %v", all, err)
	}
}

// TestAlertsEndpointStale: a real TLS endpoint still serving the replaced
// certificate after the grace period opens an endpoint incident (through
// the daemon's endpoint checks); serving the new one resolves it.
func TestAlertsEndpointStale(t *testing.T) {
	ca, port := newTestCA(t)
	var served atomic.Pointer[tls.Certificate]
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return served.Load(), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
endpoints = [%q]
`, ln.Addr().String())+alertsSection(t, dir, recv, "stale_grace = \"1s\"\n"))
	clk := newAlertClock(time.Now())
	d := openAlertDaemon(t, path, clk)
	serve := func(iss certfleet.Issuance) {
		t.Helper()
		c, err := tls.X509KeyPair(iss.ChainPEM, iss.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		served.Store(&c)
	}
	alertRunOnce(t, d)
	old := alertCurrent(t, d, "web")
	serve(old)
	clk.Set(old.NotBefore.Add(old.NotAfter.Sub(old.NotBefore) * 3 / 4)) // due for renewal
	if issued, _ := alertRunOnce(t, d); issued != 1 {
		t.Fatal("renewal failed")
	}
	cur := alertCurrent(t, d, "web")
	if cur.Serial == old.Serial {
		t.Fatal("no new certificate")
	}
	d.endpoints.pass(t.Context()) // at once: within the grace period
	alertRound(t, d)
	recv.want(t)
	clk.Set(clk.Now().Add(2 * time.Second))
	d.endpoints.pass(t.Context())
	for _, o := range d.endpoints.EndpointObservations() {
		t.Logf("observation %+v", o)
	}
	alertRound(t, d)
	alertRound(t, d)
	got := recv.want(t, "opened/warning")
	if got[0].Kind != certfleet.IncidentEndpointStale || !strings.Contains(got[0].Endpoint, ln.Addr().String()) ||
		got[0].Serial != old.Serial || !strings.Contains(got[0].Summary, "older certificate") {
		t.Errorf("endpoint notification = %+v", got[0])
	}
	serve(cur)
	d.endpoints.pass(t.Context())
	alertRound(t, d)
	recv.want(t, "opened/warning", "resolved/warning")
}

// TestServeAlerts runs the daemon's Serve loop against a short-lived
// Pebble profile, in real time: the renewal fails at validation, the
// evaluator (woken by the failure event and its interval) notifies opened,
// then worsened as expiry nears and again when the certificate expires, and
// resolved after an operator's retry succeeds once validation is fixed.
// status lists the open incident.
func TestServeAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 20-second certificate to age")
	}
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	httpPort := freePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: httpPort,
		Profiles: map[string]pebbleca.Profile{"short": {ValidityPeriod: 20 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	respPort := freePort(t)
	broken := breakableFront(t, httpPort, respPort, func(w http.ResponseWriter) { http.Error(w, "gone", http.StatusNotFound) })

	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, respPort, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
profile = "short"
renew_before = "15s"
`+alertsSection(t, dir, recv, "interval = \"1s\"\nexpiry_warning = \"1h\"\nexpiry_critical = \"6s\"\n"))
	d := openAlertDaemon(t, path, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s; webhook got %v", what, recv.states())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	key := certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}
	var first certfleet.Issuance
	waitFor("the first certificate", func() bool {
		j, err := d.Store.Job(ctx, key)
		if err != nil || j.CurrentID == 0 {
			return false
		}
		first, _ = d.Store.Issuance(ctx, j.CurrentID)
		return true
	})
	t.Logf("first certificate: not before %s, not after %s (now %s)", first.NotBefore, first.NotAfter, time.Now())
	broken.Store(true)
	waitFor("an opened notification", func() bool { return len(recv.states()) >= 1 })
	waitFor("a worsened notification", func() bool { return len(recv.states()) >= 2 })
	for _, n := range recv.notifications() {
		t.Logf("%s at %s: %s", n.State, n.SentAt, n.Summary)
	}
	if got := recv.states(); got[0] != "opened/warning" || got[1] != "worsened/critical" {
		t.Fatalf("webhook got %v, want opened/warning then worsened/critical", got)
	}
	var out strings.Builder
	if err := printIncidents(ctx, &out, d.Store, time.Now()); err != nil || !strings.Contains(out.String(), "CRITICAL") ||
		!strings.Contains(out.String(), "expiry") {
		t.Errorf("status incidents:\n%s(%v)", out.String(), err)
	}
	waitFor("the certificate to expire", func() bool { return len(recv.states()) >= 3 })
	if got := recv.states(); got[2] != "worsened/expired" {
		t.Fatalf("webhook got %v, want worsened/expired third", got)
	}
	broken.Store(false)
	if err := d.Store.RetryNow(ctx, key); err != nil { // the operator's retry
		t.Fatal(err)
	}
	d.Manager.Wake()
	waitFor("a resolved notification", func() bool { return len(recv.states()) >= 4 })
	time.Sleep(2 * time.Second) // more rounds: nothing more is sent
	if got := recv.states(); fmt.Sprint(got) != "[opened/warning worsened/critical worsened/expired resolved/expired]" {
		t.Fatalf("webhook got %v", got)
	}
	if cur := alertCurrent(t, d, "web"); cur.Serial == first.Serial {
		t.Fatal("resolved without a new certificate")
	}
}

// TestAlertTokenFile: the webhook's token file must exist, hold one line
// and not be readable by every user; errors name the file, never the token.
func TestAlertTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	for _, tc := range []struct {
		content string
		mode    os.FileMode
		want    string
	}{
		{"s3cret-token\n", 0o644, "can be read by every user"},
		{"  \n", 0o600, "want the token alone on one line"},
		{"s3cret-token\nsecond line\n", 0o600, "want the token alone on one line"},
	} {
		os.Remove(path)
		if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := readTokenFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "webhook_bearer_token_file") {
			t.Errorf("%q mode %o: %v; want %q", tc.content, tc.mode, err, tc.want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	if _, err := readTokenFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte(" s3cret-token \n"), 0o600)
	if tok, err := readTokenFile(path); err != nil || tok != "s3cret-token" {
		t.Errorf("readTokenFile = %q, %v", tok, err)
	}
}

// TestIssueRunsAlerts: cron users, who run `certfleet issue` instead of
// serve, get alerts too. A certificate whose renewal starts failing for real
// (a name added, validated through a web root nobody serves) is within the warning
// time: the issue run that fails opens the incident and notifies once; the
// next run sends nothing more.
func TestIssueRunsAlerts(t *testing.T) {
	ca, port := newTestCA(t)
	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+alertsSection(t, dir, recv, "expiry_warning = \"400d\"\n"))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	if n := recv.notifications(); len(n) != 0 {
		t.Fatalf("a healthy certificate notified: %+v", n)
	}
	breakWebRenewal(t, path)
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(out, "alerts: 1 opened") || !strings.Contains(out, "1 notification(s) sent") {
		t.Fatalf("failing issue: exit %d, want 1 and the alert round's line\n%s%s", code, out, errOut)
	}
	got := recv.want(t, "opened/warning")
	if got[0].Certificate != "web" || got[0].Failures != 1 {
		t.Errorf("notification = %+v", got[0])
	}
	if code, out, errOut = runCLI(t, "issue", "-config", path); !strings.Contains(out, "nothing due now") || strings.Contains(out, "1 notification(s) sent") {
		t.Fatalf("second run notified again: exit %d\n%s%s", code, out, errOut)
	}
	recv.want(t, "opened/warning")
}

// TestServeWaitsForAlertDelivery: an alert delivery in flight when serve
// stops still records its outcome before Serve returns, so Close never
// closes the store under it (the claim would stay held and the failed
// attempt unrecorded). The command leaves a child in its own session that
// holds its output open for 2 s after the command is killed, as a slow
// pager may.
func TestServeWaitsForAlertDelivery(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("needs setsid(1)")
	}
	ca, port := newTestCA(t)
	dir := t.TempDir()
	mark := filepath.Join(dir, "started")
	path := writeConfig(t, dir, ca, port, fmt.Sprintf("[alerts]\ninterval = \"1s\"\ncommand = [\"sh\", \"-c\", %q]\n",
		"touch "+mark+"; setsid sleep 2 & exec sleep 30"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDaemon(t.Context(), cfg, DaemonOptions{StartResponders: true, Instance: "serve-wait-test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// An incident announced earlier whose certificate is gone: the first
	// round resolves it and owes the resolution.
	at := time.Now().Add(-time.Hour)
	inc, _, err := d.Store.ObserveIncident(t.Context(), certfleet.Incident{
		Key:  certfleet.IncidentKey(certfleet.IncidentExpiry, "gone", certfleet.ECDSAP256, ""),
		Kind: certfleet.IncidentExpiry, Certificate: "gone", KeyType: certfleet.ECDSAP256,
		Severity: certfleet.SeverityWarning, Summary: "certificate gone expires soon", UpdatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, won, err := d.Store.ClaimNotification(t.Context(), inc.ID, "earlier", at, at.Add(time.Minute)); err != nil || !won {
		t.Fatalf("claim: %v, %v", won, err)
	}
	if err := d.Store.CompleteNotification(t.Context(), inc.ID, "earlier", certfleet.NotifyOpened, certfleet.SeverityWarning, at); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	for {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the alert command never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	after, err := OpenDaemon(t.Context(), cfg, DaemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	list, err := after.Store.Incidents(t.Context(), certfleet.IncidentFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("incidents: %+v, %v", list, err)
	}
	got := list[0]
	if got.Open() || got.ClaimOwner != "" || got.DeliveryAttempts != 1 || got.ResolutionNotified {
		t.Errorf("after serve stopped mid-delivery: open %v, claim %q, attempts %d, resolution notified %v; want resolved, the claim released and the interrupted attempt counted (the resolution stays owed)",
			got.Open(), got.ClaimOwner, got.DeliveryAttempts, got.ResolutionNotified)
	}
}

// TestIssueAlertDeliveryFails: when the webhook is down, issue still prints
// the pass's failure summary and adds that the notification stays owed.
func TestIssueAlertDeliveryFails(t *testing.T) {
	ca, port := newTestCA(t)
	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+alertsSection(t, dir, recv, "expiry_warning = \"400d\"\n"))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	recv.srv.Close() // the webhook goes down
	breakWebRenewal(t, path)
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(errOut, "1 certificate(s) failed") || !strings.Contains(errOut, "1 alert notification(s) could not be delivered") ||
		!strings.Contains(out, "alerts: 1 opened") {
		t.Fatalf("exit %d, want 1 with both the failure summary and the undelivered alert\n%s%s", code, out, errOut)
	}
}

// TestFleetForgetResolvesAgentIncident: a host taken out of service keeps
// its last report, so its "old certificate" incident stays open; `certfleet
// fleet forget` deletes its reports, the next round resolves the incident
// (notified once), and the audit trail records who did it.
func TestFleetForgetResolvesAgentIncident(t *testing.T) {
	ca, port := newTestCA(t)
	dir := t.TempDir()
	recv := newAlertReceiver(t)
	path := writeConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+alertsSection(t, dir, recv, "stale_grace = \"1s\"\n"))
	clk := newAlertClock(time.Now())
	d := openAlertDaemon(t, path, clk)
	if issued, _ := alertRunOnce(t, d); issued != 1 {
		t.Fatal("issuance failed")
	}
	cur := alertCurrent(t, d, "web")
	fleet := d.Store.(certfleet.FleetStore)
	if err := fleet.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "gone", Certificate: "web", KeyType: certfleet.ECDSAP256,
		Serial: "01", Fingerprint: "00", InstalledAt: cur.IssuedAt.Add(-time.Hour), ReportedAt: cur.IssuedAt, TokenID: "tok_x"}); err != nil {
		t.Fatal(err)
	}
	clk.Set(cur.IssuedAt.Add(time.Minute))
	alertRound(t, d)
	alertRound(t, d)
	got := recv.notifications()
	if len(got) != 1 || got[0].State != "opened" || got[0].Agent != "gone" {
		t.Fatalf("want one opened incident for agent gone, got %v", recv.states())
	}
	if code, out, errOut := runCLI(t, "fleet", "forget", "-config", path, "gone"); code != 0 || !strings.Contains(out, "agent gone forgotten (1 report(s) deleted)") {
		t.Fatalf("fleet forget: exit %d\n%s%s", code, out, errOut)
	}
	alertRound(t, d)
	alertRound(t, d)
	if got := recv.notifications(); len(got) != 2 || got[1].State != "resolved" || got[1].Agent != "gone" {
		t.Fatalf("want the incident resolved once, got %v", recv.states())
	}
	if code, _, errOut := runCLI(t, "fleet", "forget", "-config", path, "gone"); code != 1 || !strings.Contains(errOut, `agent "gone" has no reports`) {
		t.Fatalf("forgetting again: exit %d\n%s", code, errOut)
	}
	if code, out, _ := runCLI(t, "audit", "-config", path, "-kind", "agent_forgotten"); code != 0 || !strings.Contains(out, "agent gone forgotten") {
		t.Fatalf("audit of the forget: exit %d\n%s", code, out)
	}
}
