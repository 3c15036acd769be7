package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/status"
)

// TestAlertsOnValidationFailure: renewals that Pebble refuses because the
// http-01 answer is wrong (a front server in the CA's path answers with a
// wrong key authorization) open one incident, notified once over many
// rounds, worsened once when it turns critical, and resolved once when the
// front is fixed and the renewal succeeds.
func TestAlertsOnValidationFailure(t *testing.T) {
	t.Setenv("PEBBLE_AUTHZREUSE", "0") // every renewal is validated again
	ca, caPort := daemontest.StartCA(t)
	respPort := daemontest.FreePort(t)
	broken := daemontest.BreakableFront(t, caPort, respPort, func(w http.ResponseWriter) { io.WriteString(w, "not-the-key-authorization") })

	path, recv := daemontest.WriteWebAlertsConfig(t, ca, respPort, "", "")
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("first issuance failed")
	}
	first := daemontest.Current(t, d, "web")
	life := first.NotAfter.Sub(first.NotBefore)
	warning, critical := alert.Settings{}.Warning(life), alert.Settings{}.Critical(life)
	daemontest.AlertRound(t, d)
	recv.Want(t)

	broken.Store(true)
	clk.Set(first.NotAfter.Add(-warning + 24*time.Hour))
	if _, failed := daemontest.RunOnce(t, d); failed != 1 {
		t.Fatal("renewal through the broken front did not fail")
	}
	job, _ := d.Store.Job(t.Context(), certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256})
	if !strings.Contains(job.LastError, "unauthorized") && !strings.Contains(job.LastError, "not-the-key-authorization") {
		t.Fatalf("the renewal failed, but not at validation: %s", job.LastError)
	}
	for range 3 {
		daemontest.AlertRound(t, d)
		clk.Set(clk.Now().Add(time.Hour))
	}
	got := recv.Want(t, "opened/warning")
	n := got[0]
	if n.Kind != certfleet.IncidentExpiry || n.Certificate != "web" || n.KeyType != certfleet.ECDSAP256 || n.Failures != 1 ||
		n.LastError == "" || n.Serial != certfleet.FormatSerial(first.Serial) || !n.NotAfter.Equal(first.NotAfter) {
		t.Errorf("opened notification = %+v", n)
	}
	// Another failure, still a warning: nothing new.
	clk.Set(first.NotAfter.Add(-warning/2 - 24*time.Hour))
	if _, failed := daemontest.RunOnce(t, d); failed != 1 {
		t.Fatal("second renewal did not fail")
	}
	daemontest.AlertRound(t, d)
	recv.Want(t, "opened/warning")
	// Critical.
	clk.Set(first.NotAfter.Add(-critical + 12*time.Hour))
	daemontest.RunOnce(t, d)
	daemontest.AlertRound(t, d)
	daemontest.AlertRound(t, d)
	got = recv.Want(t, "opened/warning", "worsened/critical")
	if got[1].IncidentID != n.IncidentID || got[1].Failures < 2 || got[1].PreviousSeverity != certfleet.SeverityWarning {
		t.Errorf("worsened notification = %+v", got[1])
	}
	// Fixed: the renewal succeeds and the incident resolves, once.
	broken.Store(false)
	clk.Set(clk.Now().Add(2 * 24 * time.Hour))
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("renewal after the fix did not succeed")
	}
	for range 3 {
		daemontest.AlertRound(t, d)
	}
	got = recv.Want(t, "opened/warning", "worsened/critical", "resolved/critical")
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
	p := &caProxy{t: t, target: target, addr: fmt.Sprintf("127.0.0.1:%d", daemontest.FreePort(t))}
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
		ca, port := daemontest.StartCA(t)
		caURL, _ := url.Parse(ca.DirectoryURL())
		proxy := newCAProxy(t, caURL.Host)
		testCAOutage(t, ca, port, "https://"+proxy.addr+caURL.Path, nil, proxy.down, proxy.up, "refused")
	})
	t.Run("503", func(t *testing.T) {
		ca, port := daemontest.StartCA(t)
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
	path, recv := daemontest.WriteWebAlertsConfig(t, ca, port, "", "expiry_warning = \"400d\"\nexpiry_critical = \"5d\"\n")
	text, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(text), ca.DirectoryURL(), directory, 1)), 0o600)
	if extraRoot != nil {
		roots := filepath.Join(filepath.Dir(path), "ca.pem")
		if err := os.WriteFile(roots, append(ca.TLSRootPEM(), extraRoot...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("first issuance through the proxy failed")
	}
	first := daemontest.Current(t, d, "web")
	life := first.NotAfter.Sub(first.NotBefore)

	down()
	clk.Set(first.NotBefore.Add(life * 3 / 4))
	if _, failed := daemontest.RunOnce(t, d); failed != 1 {
		t.Fatal("renewal with the CA down did not fail")
	}
	for range 3 {
		daemontest.AlertRound(t, d)
		clk.Set(clk.Now().Add(10 * time.Minute))
	}
	got := recv.Want(t, "opened/warning")
	if !strings.Contains(got[0].LastError, lastError) {
		t.Errorf("opened notification's last_error %q does not say %q", got[0].LastError, lastError)
	}
	clk.Set(first.NotAfter.Add(-3 * 24 * time.Hour))
	daemontest.RunOnce(t, d)
	daemontest.AlertRound(t, d)
	daemontest.AlertRound(t, d)
	got = recv.Want(t, "opened/warning", "worsened/critical")
	if got[1].Failures <= got[0].Failures {
		t.Errorf("failures did not grow: %d then %d", got[0].Failures, got[1].Failures)
	}
	// (Past NotAfter the fake clock would make the replacement, which the
	// CA dates by the real clock, look expired too: TestServeAlerts covers
	// "expired" in real time.)

	up()
	clk.Set(clk.Now().Add(2 * 24 * time.Hour))
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("renewal with the CA back did not succeed")
	}
	daemontest.AlertRound(t, d)
	daemontest.AlertRound(t, d)
	recv.Want(t, "opened/warning", "worsened/critical", "resolved/critical")

	all, err := d.Store.Incidents(t.Context(), certfleet.IncidentFilter{})
	if err != nil || len(all) != 1 || all[0].Open() || !all[0].ResolutionNotified {
		t.Fatalf("incidents = %+v, %v", all, err)
	}
}

// TestAlertsEndpointStale: a real TLS endpoint still serving the replaced
// certificate after the grace period opens an endpoint incident (through
// the daemon's endpoint checks); serving the new one resolves it.
func TestAlertsEndpointStale(t *testing.T) {
	ca, port := daemontest.StartCA(t)
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
	path, recv := daemontest.WriteWebAlertsConfig(t, ca, port, fmt.Sprintf("endpoints = [%q]\n", ln.Addr().String()), "stale_grace = \"1s\"\n")
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	serve := func(iss certfleet.Issuance) {
		t.Helper()
		c, err := tls.X509KeyPair(iss.ChainPEM, iss.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		served.Store(&c)
	}
	daemontest.RunOnce(t, d)
	old := daemontest.Current(t, d, "web")
	serve(old)
	clk.Set(old.NotBefore.Add(old.NotAfter.Sub(old.NotBefore) * 3 / 4)) // due for renewal
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("renewal failed")
	}
	cur := daemontest.Current(t, d, "web")
	if cur.Serial == old.Serial {
		t.Fatal("no new certificate")
	}
	d.CheckEndpointsNow(t.Context()) // at once: within the grace period
	daemontest.AlertRound(t, d)
	recv.Want(t)
	clk.Set(clk.Now().Add(2 * time.Second))
	d.CheckEndpointsNow(t.Context())
	for _, o := range d.EndpointObservations() {
		t.Logf("observation %+v", o)
	}
	daemontest.AlertRound(t, d)
	daemontest.AlertRound(t, d)
	got := recv.Want(t, "opened/warning")
	if got[0].Kind != certfleet.IncidentEndpointStale || !strings.Contains(got[0].Endpoint, ln.Addr().String()) ||
		got[0].Serial != certfleet.FormatSerial(old.Serial) || !strings.Contains(got[0].Summary, "older certificate") {
		t.Errorf("endpoint notification = %+v", got[0])
	}
	serve(cur)
	d.CheckEndpointsNow(t.Context())
	daemontest.AlertRound(t, d)
	recv.Want(t, "opened/warning", "resolved/warning")
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
	httpPort := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: httpPort,
		Profiles: map[string]pebbleca.Profile{"short": {ValidityPeriod: 20 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	respPort := daemontest.FreePort(t)
	broken := daemontest.BreakableFront(t, httpPort, respPort, func(w http.ResponseWriter) { http.Error(w, "gone", http.StatusNotFound) })

	path, recv := daemontest.WriteWebAlertsConfig(t, ca, respPort, `profile = "short"
renew_before = "15s"
`, "interval = \"1s\"\nexpiry_warning = \"1h\"\nexpiry_critical = \"6s\"\n")
	d := daemontest.OpenDaemon(t, path, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s; webhook got %v", what, recv.States())
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
	waitFor("an opened notification", func() bool { return len(recv.States()) >= 1 })
	waitFor("a worsened notification", func() bool { return len(recv.States()) >= 2 })
	for _, n := range recv.Notifications() {
		t.Logf("%s at %s: %s", n.State, n.SentAt, n.Summary)
	}
	if got := recv.States(); got[0] != "opened/warning" || got[1] != "worsened/critical" {
		t.Fatalf("webhook got %v, want opened/warning then worsened/critical", got)
	}
	var out strings.Builder
	if err := status.Incidents(ctx, &out, d.Store, time.Now()); err != nil || !strings.Contains(out.String(), "CRITICAL") ||
		!strings.Contains(out.String(), "expiry") {
		t.Errorf("status incidents:\n%s(%v)", out.String(), err)
	}
	waitFor("the certificate to expire", func() bool { return len(recv.States()) >= 3 })
	if got := recv.States(); got[2] != "worsened/expired" {
		t.Fatalf("webhook got %v, want worsened/expired third", got)
	}
	broken.Store(false)
	if err := d.Store.RetryNow(ctx, key); err != nil { // the operator's retry
		t.Fatal(err)
	}
	d.Manager.Wake()
	waitFor("a resolved notification", func() bool { return len(recv.States()) >= 4 })
	time.Sleep(2 * time.Second) // more rounds: nothing more is sent
	if got := recv.States(); fmt.Sprint(got) != "[opened/warning worsened/critical worsened/expired resolved/expired]" {
		t.Fatalf("webhook got %v", got)
	}
	if cur := daemontest.Current(t, d, "web"); cur.Serial == first.Serial {
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
		_, err := daemon.ReadTokenFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "webhook_bearer_token_file") {
			t.Errorf("%q mode %o: %v; want %q", tc.content, tc.mode, err, tc.want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	if _, err := daemon.ReadTokenFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte(" s3cret-token \n"), 0o600)
	if tok, err := daemon.ReadTokenFile(path); err != nil || tok != "s3cret-token" {
		t.Errorf("readTokenFile = %q, %v", tok, err)
	}
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
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	mark := filepath.Join(dir, "started")
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf("[alerts]\ninterval = \"1s\"\ncommand = [\"sh\", \"-c\", %q]\n",
		"touch "+mark+"; setsid sleep 2 & exec sleep 30"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true, Instance: "serve-wait-test",
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

	after, err := daemon.Open(t.Context(), cfg, daemon.Options{})
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
