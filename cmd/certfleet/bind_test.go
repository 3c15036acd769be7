package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// findNamed returns the path of BIND's named, skipping the test when it is
// missing locally and failing it in CI (.ci/install-bind9.sh installs it).
func findNamed(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"named", "/usr/sbin/named"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("BIND 9 (named) is not installed, but CI is set: run .ci/install-bind9.sh")
	}
	t.Skip("SKIPPED: BIND 9 (named) is not installed; run .ci/install-bind9.sh (apt-get install bind9 bind9-utils) to run the dns-01 interop test")
	return ""
}

// startBIND runs named in the foreground on 127.0.0.1:port with a TSIG key
// and the dynamic zone example.test, whose update-policy lets the key
// change TXT records only. It returns the address and the key's secret.
func startBIND(t *testing.T) (addr, secret string) {
	t.Helper()
	named := findNamed(t)
	keygen, err := exec.LookPath("tsig-keygen")
	if err != nil {
		keygen = "/usr/sbin/tsig-keygen"
	}
	key, err := exec.Command(keygen, "-a", "hmac-sha256", "certfleet").Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v", err)
	}
	m := regexp.MustCompile(`secret "([^"]+)"`).FindSubmatch(key)
	if m == nil {
		t.Fatalf("no secret in tsig-keygen output")
	}
	secret = string(m[1])
	dir := t.TempDir()
	port := daemontest.FreePort(t)
	zone := `$TTL 60
@ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
@ IN NS ns1.example.test.
ns1 IN A 127.0.0.1
www IN A 127.0.0.1
`
	if err := os.WriteFile(filepath.Join(dir, "example.test.db"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`options {
	directory %[1]q;
	pid-file %[1]q "/named.pid";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
	allow-query { any; };
};
controls { };
%[3]s
zone "example.test" {
	type primary;
	file %[1]q "/example.test.db";
	update-policy { grant certfleet subdomain example.test. TXT; };
};
`, dir, port, key)
	conf = strings.Replace(conf, `pid-file "`+dir+`" "/named.pid"`, `pid-file "`+dir+`/named.pid"`, 1)
	conf = strings.Replace(conf, `file "`+dir+`" "/example.test.db"`, `file "`+dir+`/example.test.db"`, 1)
	confPath := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(named, "-g", "-c", confPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start named: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("named log:\n%s", logs.String())
		}
	})
	addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeSOA)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		if r, _, err := c.Exchange(q, addr); err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative {
			return addr, secret
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not answer on %s within 20 s:\n%s", addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
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
