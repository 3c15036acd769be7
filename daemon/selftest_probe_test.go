package daemon_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
)

// customerTLSSite serves TLS on addr with a self-signed certificate and
// no acme-tls/1: a customer's HTTPS site that does not pass tls-alpn-01
// on to certfleet.
func customerTLSSite(t *testing.T, addr string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "customer site"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"alpn.example.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
}

// TestSelfTestTLSALPN (issue 14): a tls-alpn-01 name whose A record points
// at another HTTPS server (one that does not pass acme-tls/1 on) waits
// with the tls_alpn reason and costs no order; once the record points at
// certfleet's tls-alpn-01 responder the probe handshake passes and the
// name is issued, with one order.
func TestSelfTestTLSALPN(t *testing.T) {
	srv, err := dnstest.Start("127.0.0.1", "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.AddZone("example.test", "ns1.example.test")
	srv.Add("ns1.example.test. 60 IN A 127.0.0.1")
	tlsPort := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: daemontest.FreePort(t), TLSPort: tlsPort, ResolverAddr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	customerTLSSite(t, fmt.Sprintf("127.0.0.2:%d", tlsPort))
	srv.SetA("alpn.example.test", "127.0.0.2")

	d := serveConfig(t, ca, fmt.Sprintf(`[http01]
listen = ""
[tlsalpn01]
listen = "127.0.0.1:%d"
[self_test]
resolvers = [%q]
tls_port = %d
retest_min = "1s"
retest_max = "2s"
[[certificate]]
name = "alpn"
challenge = "tls-alpn-01"
identifiers = ["alpn.example.test"]
`, tlsPort, srv.Addr(), tlsPort))
	waitWithin(t, 20*time.Second, "alpn.example.test never waited twice", func() bool {
		w := waiting(t, d.Store, "alpn")
		return len(w) == 1 && w[0].Tests >= 2
	})
	w := waiting(t, d.Store, "alpn")[0]
	if w.Code != certfleet.WaitTLSALPN || !strings.Contains(w.Reason, "resolves to 127.0.0.2") || !strings.Contains(w.Reason, "handshake on port 443 did not reach certfleet") {
		t.Errorf("waiting %s: %q, want the tls_alpn reason naming 127.0.0.2", w.Code, w.Reason)
	}
	if got := ca.NewOrders(); got != 0 {
		t.Fatalf("%d orders placed while the name points elsewhere, want 0", got)
	}

	srv.SetA("alpn.example.test", "127.0.0.1")
	waitWithin(t, 30*time.Second, "never issued once the name points at certfleet", func() bool { return issuedNow(t, d.Store, "alpn") != nil })
	if got := ca.NewOrders(); got != 1 {
		t.Errorf("%d orders, want 1", got)
	}
	if evs, _ := d.Store.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventReady}); len(evs) != 1 {
		t.Errorf("%d ready events, want 1", len(evs))
	}
}

// TestSelfTestDNS01 (issue 14): a dns-01 name whose _acme-challenge
// delegation the customer has not set up yet waits with the dns01 reason
// and costs no order; once the CNAME into the zone certfleet's provider
// writes is published, the name is issued with one order.
func TestSelfTestDNS01(t *testing.T) {
	n := daemontest.StartDNSNet(t)
	d := serveConfig(t, n.CA, fmt.Sprintf(`[http01]
listen = ""
[tlsalpn01]
listen = ""
[dns01]
nameservers = [%q]
authoritative_port = %s
propagation_timeout = "20s"
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
secret = %q
[self_test]
resolvers = [%q]
retest_min = "1s"
retest_max = "2s"
[[certificate]]
name = "shop"
challenge = "dns-01"
identifiers = ["shop.customer.test"]
`, n.DNS.Addr(), n.DNS.Port(), n.Secret, n.DNS.Addr()))
	waitWithin(t, 20*time.Second, "shop.customer.test never waited twice", func() bool {
		w := waiting(t, d.Store, "shop")
		return len(w) == 1 && w[0].Tests >= 2
	})
	w := waiting(t, d.Store, "shop")[0]
	if w.Code != certfleet.WaitDNS01 || !strings.Contains(w.Reason, "shop.customer.test") {
		t.Errorf("waiting %s: %q, want the dns01 reason naming the name", w.Code, w.Reason)
	}
	if got := n.CA.NewOrders(); got != 0 {
		t.Fatalf("%d orders placed without the delegation, want 0", got)
	}

	// The customer delegates _acme-challenge into the zone certfleet's
	// provider may write.
	n.DNS.AddZone("customer.test", "ns1.example.test")
	n.DNS.Add("_acme-challenge.shop.customer.test. 60 IN CNAME shop.customer.acme.example.test.")
	waitWithin(t, 60*time.Second, "never issued once the delegation is published", func() bool { return issuedNow(t, d.Store, "shop") != nil })
	if got := n.CA.NewOrders(); got != 1 {
		t.Errorf("%d orders, want 1", got)
	}
	if got := n.DNS.TXT("shop.customer.acme.example.test"); len(got) != 0 {
		t.Errorf("TXT records left behind at the delegation's target: %q", got)
	}
}

// serveConfig writes a config for ca with extra (listeners, solvers,
// [self_test], certificates), opens the daemon and serves it until the
// test ends.
func serveConfig(t *testing.T, ca *pebbleca.CA, extra string) *daemon.Daemon {
	t.Helper()
	dir := t.TempDir()
	path := dir + "/certfleet.toml"
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`state = "state.db"
[ca]
directory = %q
trusted_roots = %q
%s`, ca.DirectoryURL(), writeRoots(t, dir, ca), extra)), 0o600); err != nil {
		t.Fatal(err)
	}
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
	(&readyNet{}).run(t, d)
	return d
}
