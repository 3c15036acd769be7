package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/metricstest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/preflight"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
	"github.com/certfleet/certfleet/status"
)

// readyNet is a DNS server the test controls (zone example.test; it also
// answers as the resolver) and a Pebble that validates through it, with
// http-01 on port HTTPPort (where the self-test probes too); certfleet's
// responder listens on RespPort (HTTPPort unless a proxy sits between).
type readyNet struct {
	DNS                *dnstest.Server
	CA                 *pebbleca.CA
	HTTPPort, RespPort int
}

func startReadyNet(t *testing.T) *readyNet {
	t.Helper()
	srv, err := dnstest.Start("127.0.0.1", "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.ChaseCNAME = true
	srv.AddZone("example.test", "ns1.example.test")
	srv.Add("ns1.example.test. 60 IN A 127.0.0.1")
	n := &readyNet{DNS: srv, HTTPPort: daemontest.FreePort(t)}
	n.RespPort = n.HTTPPort
	n.CA, err = pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: n.HTTPPort, ResolverAddr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.CA.Close() })
	return n
}

// serve opens and serves a daemon of the net with certs (and a
// [self_test] re-testing every 1 to 2 s) and returns it; it stops when
// the test ends.
func (n *readyNet) serve(t *testing.T, extra, certs string) *daemon.Daemon {
	t.Helper()
	d := n.open(t, extra, certs)
	n.run(t, d)
	return d
}

// open opens a daemon of the net (see serve) without serving it.
func (n *readyNet) open(t *testing.T, extra, certs string) *daemon.Daemon {
	t.Helper()
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, n.CA, n.RespPort, fmt.Sprintf(`
[self_test]
resolvers = [%q]
http_port = %d
retest_min = "1s"
retest_max = "2s"
%s
%s`, n.DNS.Addr(), n.HTTPPort, extra, certs))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := &daemontest.SyncBuffer{}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	return d
}

// run serves d until the test ends.
func (n *readyNet) run(t *testing.T, d *daemon.Daemon) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitWithin(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func waiting(t *testing.T, st certfleet.Store, spec string) []certfleet.WaitingName {
	t.Helper()
	w, err := st.WaitingNames(t.Context(), certfleet.WaitingFilter{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func issuedNow(t *testing.T, st certfleet.Store, spec string) *certfleet.Issuance {
	t.Helper()
	j, err := st.Job(t.Context(), certfleet.JobKey{Spec: spec, KeyType: certfleet.ECDSAP256})
	if err != nil || j.CurrentID == 0 {
		return nil
	}
	iss, err := st.Issuance(t.Context(), j.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	return &iss
}

// TestSelfTestWaitsForDNS (issue 14): a name whose A record points
// elsewhere waits with that reason and costs no order at the CA over
// several re-tests; once the record points at certfleet it is issued
// within one re-test interval.
func TestSelfTestWaitsForDNS(t *testing.T) {
	n := startReadyNet(t)
	n.DNS.SetA("www.example.test", "127.0.0.2") // nothing of ours listens there
	d := n.serve(t, "", "[[certificate]]\nname = \"www\"\nidentifiers = [\"www.example.test\"]\n")

	waitWithin(t, 15*time.Second, "www.example.test never waited", func() bool { return len(waiting(t, d.Store, "www")) == 1 })
	w := waiting(t, d.Store, "www")[0]
	if w.Code != certfleet.WaitDNS || !strings.Contains(w.Reason, "www.example.test resolves to 127.0.0.2") || !strings.Contains(w.Reason, "did not reach certfleet") {
		t.Errorf("waiting %s: %q, want the dns reason naming 127.0.0.2", w.Code, w.Reason)
	}
	waitWithin(t, 20*time.Second, "fewer than 4 self-tests", func() bool {
		w := waiting(t, d.Store, "www")
		return len(w) == 1 && w[0].Tests >= 4
	})
	if got := n.CA.NewOrders(); got != 0 {
		t.Fatalf("%d orders placed for a waiting name, want 0", got)
	}
	if evs, _ := d.Store.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventWaiting}); len(evs) != 1 {
		t.Errorf("%d waiting events, want 1 (the first failed test only)", len(evs))
	}
	// Shown in status and the metric.
	var out bytes.Buffer
	if err := status.Certificates(t.Context(), &out, d.Store, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Names waiting for their self-test") || !strings.Contains(out.String(), "resolves to 127.0.0.2") {
		t.Errorf("status does not show the waiting name:\n%s", out.String())
	}
	srv := httptest.NewServer(d.Metrics.Handler())
	defer srv.Close()
	if v, ok := metricstest.MustScrape(t, srv.URL).Value("certfleet_names_waiting", "reason", "dns"); !ok || v != 1 {
		t.Errorf("certfleet_names_waiting{reason=dns} = %v (%v), want 1", v, ok)
	}

	n.DNS.SetA("www.example.test", "127.0.0.1")
	fixed := time.Now()
	waitWithin(t, 2*time.Second+time.Second, "not re-tested within one re-test interval (2s) of the fix", func() bool { return len(waiting(t, d.Store, "www")) == 0 })
	waitWithin(t, 30*time.Second, "never issued after the fix", func() bool { return issuedNow(t, d.Store, "www") != nil })
	t.Logf("issued %s after the fix", time.Since(fixed).Round(time.Millisecond))
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders, want exactly 1", got)
	}
}

// TestSelfTestBehindProxy (issue 14): an http-01 name served by a real
// forwarding proxy (Go's httputil.ReverseProxy) in front of certfleet
// waits while the proxy lacks the /.well-known/acme-challenge/ rule (its
// site answers 404), and is issued once the rule is added.
func TestSelfTestBehindProxy(t *testing.T) {
	n := startReadyNet(t)
	n.RespPort = daemontest.FreePort(t)
	target, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", n.RespPort))
	forward := httputil.NewSingleHostReverseProxy(target)
	var rule atomic.Bool
	proxy := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", n.HTTPPort), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rule.Load() && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			forward.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Server", "customer-site")
		http.NotFound(w, r) // the customer's own site
	})}
	ln, err := net.Listen("tcp", proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go proxy.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { proxy.Close() })

	d := n.serve(t, "", "[[certificate]]\nname = \"shop\"\nidentifiers = [\"shop.example.test\"]\n")
	waitWithin(t, 15*time.Second, "shop.example.test never waited", func() bool {
		w := waiting(t, d.Store, "shop")
		return len(w) == 1 && w[0].Tests >= 2
	})
	w := waiting(t, d.Store, "shop")[0]
	if w.Code != certfleet.WaitHTTP || !strings.Contains(w.Reason, "answered 404 Not Found") || !strings.Contains(w.Reason, `server "customer-site"`) {
		t.Errorf("waiting %s: %q, want the http reason with the proxy's 404", w.Code, w.Reason)
	}
	if got := n.CA.NewOrders(); got != 0 {
		t.Fatalf("%d orders placed while the proxy lacks its rule, want 0", got)
	}
	rule.Store(true)
	waitWithin(t, 30*time.Second, "never issued once the proxy forwards", func() bool { return issuedNow(t, d.Store, "shop") != nil })
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders, want 1", got)
	}
}

// TestDNSPersist01 (issue 14): a wildcard and its apex issued with
// dns-persist-01 and no DNS provider configured at all, once the domain's
// owner has published the record certfleet prints; before that, the names
// wait (the record is missing) and no order is placed.
func TestDNSPersist01(t *testing.T) {
	n := startReadyNet(t)
	d := n.serve(t, "", "[[certificate]]\nname = \"wild\"\nchallenge = \"dns-persist-01\"\nidentifiers = [\"*.persist.example.test\", \"persist.example.test\"]\n")
	if len(d.Config.DNS01.Providers) != 0 {
		t.Fatal("the config has DNS providers")
	}
	waitWithin(t, 15*time.Second, "the names never waited", func() bool { return len(waiting(t, d.Store, "wild")) == 2 })
	for _, w := range waiting(t, d.Store, "wild") {
		if w.Code != certfleet.WaitPersist || !strings.Contains(w.Reason, "record is missing") || !strings.Contains(w.Reason, "_validation-persist.persist.example.test") {
			t.Errorf("waiting %s %s: %q, want the missing record", w.Identifier.Value, w.Code, w.Reason)
		}
	}
	if got := n.CA.NewOrders(); got != 0 {
		t.Fatalf("%d orders placed without the record, want 0", got)
	}
	recs, err := d.PersistRecords(t.Context(), "default", []string{"*.persist.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	who, _ := d.PersistIdentity(t.Context(), "default")
	want := fmt.Sprintf(`_validation-persist.persist.example.test. TXT "pebble.letsencrypt.org; accounturi=%s; policy=wildcard"`, who.AccountURL)
	if len(recs) != 1 || recs[0] != want || !strings.HasPrefix(who.AccountURL, "https://") {
		t.Fatalf("record printed: %q, want %q", recs, want)
	}
	// certfleet check says the same, and prints the record.
	check := func() string {
		var out bytes.Buffer
		st := certfleet.Store(d.Store)
		(&preflight.Checker{Config: d.CurrentConfig(), Out: &out, Persist: daemon.PersistLookup(d.CurrentConfig(), &st)}).Run(t.Context())
		return out.String()
	}
	if out := check(); !strings.Contains(out, "FAIL  *.persist.example.test") || !strings.Contains(out, "publish _validation-persist.persist.example.test TXT") {
		t.Errorf("certfleet check before the record:\n%s", out)
	}
	// The owner publishes it (certfleet never writes it).
	n.DNS.SetTXT("_validation-persist.persist.example.test", certfleet.PersistRecordValue("pebble.letsencrypt.org", who.AccountURL, true))
	waitWithin(t, 30*time.Second, "never issued once the record is published", func() bool { return issuedNow(t, d.Store, "wild") != nil })
	if out := check(); !strings.Contains(out, "ok    *.persist.example.test") || !strings.Contains(out, "ok    persist.example.test") {
		t.Errorf("certfleet check after the record:\n%s", out)
	}
	iss := issuedNow(t, d.Store, "wild")
	if got := certfleet.IdentifierValues(iss.Identifiers); len(got) != 2 {
		t.Errorf("issued for %v, want the wildcard and its apex", got)
	}
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders, want 1", got)
	}
}

// TestPackShedsWaitingName (issue 14): a pack of five names requested over
// the API, one of which points elsewhere: the other four are issued in one
// certificate without it, and the fifth joins once its record is fixed.
func TestPackShedsWaitingName(t *testing.T) {
	n := startReadyNet(t)
	n.DNS.SetA("p5.example.test", "127.0.0.2")
	d := n.open(t, "[api]\nlisten = \"127.0.0.1:0\"\npack_size = 5\n", "")
	ts, err := daemon.APIStore(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := daemon.CreateToken(t.Context(), ts, "panel", []string{"*"}, []certfleet.Permission{certfleet.PermAdmin}, false)
	if err != nil {
		t.Fatal(err)
	}
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &httpapi.Client{BaseURL: "http://" + addr, Token: secret}
	var pack string
	for i := 1; i <= 5; i++ {
		st, err := c.PutName(t.Context(), fmt.Sprintf("p%d.example.test", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if pack != "" && st.Certificate != pack {
			t.Fatalf("p%d in %s, want the pack %s", i, st.Certificate, pack)
		}
		pack = st.Certificate
	}
	n.run(t, d)
	waitWithin(t, 30*time.Second, "the four ready names were never issued", func() bool { return issuedNow(t, d.Store, pack) != nil })
	got := certfleet.IdentifierValues(issuedNow(t, d.Store, pack).Identifiers)
	if strings.Join(got, ",") != "p1.example.test,p2.example.test,p3.example.test,p4.example.test" {
		t.Fatalf("first certificate holds %v, want p1 to p4", got)
	}
	if o := n.CA.NewOrders(); o != 1 {
		t.Errorf("%d orders for the four, want 1", o)
	}
	st, _, _, err := c.Status(t.Context(), "p5.example.test", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Waiting == nil || st.Waiting.Reason != certfleet.WaitDNS || st.Issued {
		t.Errorf("p5's status: waiting %+v, issued %v; want waiting for dns", st.Waiting, st.Issued)
	}
	if st, _, _, err := c.Status(t.Context(), "p1.example.test", httpapi.FetchOptions{}); err != nil || !st.Issued || st.Waiting != nil {
		t.Errorf("p1's status: issued %v, waiting %+v (%v); want issued", st.Issued, st.Waiting, err)
	}

	n.DNS.SetA("p5.example.test", "127.0.0.1")
	waitWithin(t, 30*time.Second, "the fifth never joined", func() bool {
		iss := issuedNow(t, d.Store, pack)
		return iss != nil && len(iss.Identifiers) == 5
	})
	if o := n.CA.NewOrders(); o != 2 {
		t.Errorf("%d orders in all, want 2", o)
	}
}
