// Package bindtest runs a real BIND 9 named for tests: on a loopback port,
// in the foreground, with its own TSIG key and, when asked, a dynamic zone
// the key may change TXT records in. It is for _test.go files only; it is
// not a DNS server of its own.
package bindtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Options shape one named.
type Options struct {
	// KeyName is the TSIG key's name. Default "certfleet".
	KeyName string
	// Zone is the primary zone served, e.g. "example.test"; "" serves
	// none (a server that is authoritative for nothing).
	Zone string
	// Grant is the update-policy rule of the zone. Default: the key may
	// change TXT records anywhere in it.
	Grant string
	// Records are more lines of the zone file (e.g. "www IN A 127.0.0.1").
	Records string
}

// Server is a running named.
type Server struct {
	Addr, KeyName, Secret string
}

// Find returns named's path, skipping the test when it is missing locally
// and failing it in CI (.ci/install-bind9.sh installs it).
func Find(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"named", "/usr/sbin/named"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("BIND 9 (named) is not installed, but CI is set: run .ci/install-bind9.sh")
	}
	t.Skip("SKIPPED: BIND 9 (named) is not installed; run .ci/install-bind9.sh")
	return ""
}

// Start runs named with o until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	named := Find(t)
	if o.KeyName == "" {
		o.KeyName = "certfleet"
	}
	keygen, err := exec.LookPath("tsig-keygen")
	if err != nil {
		keygen = "/usr/sbin/tsig-keygen"
	}
	key, err := exec.Command(keygen, "-a", "hmac-sha256", o.KeyName).Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v", err)
	}
	m := regexp.MustCompile(`secret "([^"]+)"`).FindSubmatch(key)
	if m == nil {
		t.Fatal("no secret in tsig-keygen output")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	zone := ""
	if o.Zone != "" {
		if o.Grant == "" {
			o.Grant = fmt.Sprintf("grant %s subdomain %s. TXT;", o.KeyName, o.Zone)
		}
		db := fmt.Sprintf("$TTL 60\n@ IN SOA ns1.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60\n@ IN NS ns1.%[1]s.\nns1 IN A 127.0.0.1\n%[2]s\n", o.Zone, o.Records)
		if err := os.WriteFile(filepath.Join(dir, "zone.db"), []byte(db), 0o644); err != nil {
			t.Fatal(err)
		}
		zone = fmt.Sprintf("zone %q {\n\ttype primary;\n\tfile %q;\n\tupdate-policy { %s };\n};\n", o.Zone, filepath.Join(dir, "zone.db"), o.Grant)
	}
	conf := fmt.Sprintf(`options {
	directory %q;
	pid-file %q;
	listen-on port %d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
	allow-query { any; };
};
controls { };
%s
%s`, dir, filepath.Join(dir, "named.pid"), port, key, zone)
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
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), KeyName: o.KeyName, Secret: string(m[1])}
	// Ready: the zone is loaded (its SOA answered with authority), or,
	// serving none, named answers at all.
	q := new(dns.Msg)
	q.SetQuestion("version.bind.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	if o.Zone != "" {
		q = new(dns.Msg)
		q.SetQuestion(dns.Fqdn(o.Zone), dns.TypeSOA)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		if r, _, err := c.Exchange(q, s.Addr); err == nil && (o.Zone == "" || r.Rcode == dns.RcodeSuccess && r.Authoritative) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not answer on %s within 20 s:\n%s", s.Addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
