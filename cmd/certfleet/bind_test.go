package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/internal/bindtest"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// startBIND runs a real named serving the dynamic zone example.test, whose
// update-policy lets the key certfleet change TXT records only. It returns
// the address and the key's secret.
func startBIND(t *testing.T) (addr, secret string) {
	t.Helper()
	s := bindtest.Start(t, bindtest.Options{Zone: "example.test", Records: "www IN A 127.0.0.1"})
	return s.Addr, s.Secret
}

// TestBIND9Interop issues a wildcard certificate through a real BIND 9:
// RFC 2136 updates signed with TSIG, the primary found from the SOA MNAME,
// propagation checked at the zone's nameserver, and Pebble's validator
// resolving through BIND.
func TestBIND9Interop(t *testing.T) {
	addr, secret := startBIND(t)
	_, port, _ := net.SplitHostPort(addr)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{ResolverAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	conf := func(secret string) string {
		return daemontest.WriteConfig(t, t.TempDir(), ca, daemontest.FreePort(t), fmt.Sprintf(`
[dns01]
nameservers = [%q]
authoritative_port = %s
propagation_timeout = "30s"
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
secret = %q
[[certificate]]
name = "wild"
identifiers = ["*.example.test", "example.test", "www.example.test"]
challenge = "dns-01"
[self_test]
enabled = false # the update's own diagnosis is under test, not the self-test's
`, addr, port, secret))
	}
	path := conf(secret)
	code, out, errOut := runCLI(t, "check", "-config", path)
	if code != 0 {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	code, out, errOut = runCLI(t, "issue", "-config", path)
	if code != 0 || !strings.Contains(out, "issued   wild") {
		t.Fatalf("issue: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("wildcard + 2 names through BIND 9 in %v", time.Since(start).Round(time.Millisecond))
	// Cleanup removed every TXT record.
	q := new(dns.Msg)
	q.SetQuestion("_acme-challenge.example.test.", dns.TypeTXT)
	r, _, err := (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, q, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 0 {
		t.Errorf("TXT records left in BIND: %v", r.Answer)
	}

	// A wrong secret: BIND answers NOTAUTH/BADSIG; no order is placed.
	orders := ca.NewOrders()
	bad := conf("d3Jvbmctc2VjcmV0LWQzSnZibWN0YzJWamNtVjBDZz09")
	code, out, errOut = runCLI(t, "issue", "-config", bad)
	if code != 1 || !strings.Contains(out+errOut, "BADSIG") {
		t.Errorf("issue with a wrong secret: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := ca.NewOrders(); got != orders {
		t.Errorf("a wrong TSIG secret cost %d orders", got-orders)
	}
}
