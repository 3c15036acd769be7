// Package slapdtest runs a real OpenLDAP slapd (Debian's package) for
// tests: its own configuration (slapd.conf) and database directory under
// the test's temporary directory, on a loopback port, with the syncprov
// overlay (content synchronization, RFC 4533) and a small schema for the
// hosting example of docs/inventory.md: the attribute letsencrypt (a
// Boolean) on entries that carry associatedDomain.
//
// When slapd is not installed a test is skipped with a message saying how
// to install it, unless CI is set: then it fails (.ci/install-slapd.sh
// installs it). Import it from _test.go files only.
package slapdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certfleet/certfleet/internal/porttest"
)

// The directory every Server holds.
const (
	Suffix   = "dc=example,dc=test"
	RootDN   = "cn=admin," + Suffix
	RootPW   = "test-secret"
	Domains  = "ou=domains," + Suffix
	schemaLE = `attributetype ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'letsencrypt'
	DESC 'certfleet test: the entry wants a certificate'
	EQUALITY booleanMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.2 NAME 'certfleetDomain'
	DESC 'certfleet test: a hosted domain'
	SUP top AUXILIARY
	MAY ( letsencrypt ) )
`
)

// Server is a running slapd.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
	URL  string
	cmd  *exec.Cmd
	exit chan error
	// NoSync leaves the syncprov overlay out (a server without content
	// synchronization); set it before Start.
	NoSync bool
	// SizeLimit is the server's sizelimit; 0 is unlimited. Set before Start.
	SizeLimit int
}

// Find returns slapd's path, skipping t (or failing it under CI) when it
// is not installed.
func Find(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/slapd", "slapd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("OpenLDAP's slapd is not installed, but CI is set: run .ci/install-slapd.sh")
	}
	t.Skip("SKIPPED: OpenLDAP's slapd is not installed; run .ci/install-slapd.sh (apt-get install slapd ldap-utils) to run the LDAP inventory tests")
	return ""
}

// New prepares a slapd with an empty database holding only the suffix and
// ou=domains, on a free loopback port. Call Start to run it; it is stopped
// when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Find(t), dir: t.TempDir()}
	s.Port = porttest.Free(t) // slapd binds it when started
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(s.Port)
	t.Cleanup(s.Stop)
	return s
}

// Start starts slapd (again, after Stop, on the same port and data) and
// waits until it answers.
func (s *Server) Start() {
	t := s.t
	t.Helper()
	data := filepath.Join(s.dir, "data")
	fresh := false
	if _, err := os.Stat(data); os.IsNotExist(err) {
		fresh = true
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "certfleet.schema"), []byte(schemaLE), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := "overlay syncprov\nsyncprov-checkpoint 100 10\n"
	if s.NoSync {
		overlay = ""
	}
	limit := "unlimited"
	if s.SizeLimit > 0 {
		limit = strconv.Itoa(s.SizeLimit)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include %[1]s/certfleet.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
sizelimit %[5]s
database mdb
maxsize 1073741824
suffix %[2]q
rootdn %[3]q
rootpw %[4]s
directory %[1]s/data
index objectClass eq
index entryCSN,entryUUID eq
index letsencrypt eq
%[6]s`, s.dir, Suffix, RootDN, RootPW, limit, overlay)
	confPath := filepath.Join(s.dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(s.bin, "-Tt", "-u", "-f", confPath).CombinedOutput(); err != nil {
		t.Fatalf("slaptest -f %s: %v\n%s", confPath, err, out)
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// -d 0: stay in the foreground (a child this test owns), log nothing
	// but errors.
	s.cmd = exec.Command(s.bin, "-d", "0", "-h", s.URL+"/", "-f", confPath)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	log.Close()
	s.exit = make(chan error, 1)
	go func(cmd *exec.Cmd, exit chan error) { exit <- cmd.Wait() }(s.cmd, s.exit)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := ldap.DialURL(s.URL)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case err := <-s.exit:
			logged, _ := os.ReadFile(filepath.Join(s.dir, "slapd.log"))
			t.Fatalf("slapd exited: %v\n%s", err, logged)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd does not answer on %s: %v", s.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fresh {
		s.Add(Suffix, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"certfleet test"}})
		s.Add(Domains, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"domains"}})
	}
}

// Stop stops slapd (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exit
	}
	s.cmd = nil
}

// Conn returns a connection bound as the root DN, closed when the test
// ends.
func (s *Server) Conn() *ldap.Conn {
	s.t.Helper()
	conn, err := ldap.DialURL(s.URL)
	if err != nil {
		s.t.Fatalf("connect to slapd: %v", err)
	}
	if err := conn.Bind(RootDN, RootPW); err != nil {
		conn.Close()
		s.t.Fatalf("bind to slapd: %v", err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

// Add adds an entry.
func (s *Server) Add(dn string, attrs map[string][]string) {
	s.t.Helper()
	conn := s.Conn()
	req := ldap.NewAddRequest(dn, nil)
	for a, vs := range attrs {
		req.Attribute(a, vs)
	}
	if err := conn.Add(req); err != nil {
		s.t.Fatalf("add %s: %v", dn, err)
	}
	conn.Close()
}

// AddDomain adds dc=NAME,ou=domains with associatedDomain names and, when
// le is "TRUE" or "FALSE", letsencrypt.
func (s *Server) AddDomain(name, le string, names ...string) string {
	s.t.Helper()
	dn := "dc=" + name + "," + Domains
	attrs := map[string][]string{"objectClass": {"domain", "domainRelatedObject", "certfleetDomain"}, "dc": {name}, "associatedDomain": names}
	if le != "" {
		attrs["letsencrypt"] = []string{le}
	}
	s.Add(dn, attrs)
	return dn
}

// Modify applies a modification to dn.
func (s *Server) Modify(dn string, fn func(*ldap.ModifyRequest)) {
	s.t.Helper()
	conn := s.Conn()
	req := ldap.NewModifyRequest(dn, nil)
	fn(req)
	if err := conn.Modify(req); err != nil {
		s.t.Fatalf("modify %s: %v", dn, err)
	}
	conn.Close()
}

// Delete deletes dn.
func (s *Server) Delete(dn string) {
	s.t.Helper()
	conn := s.Conn()
	if err := conn.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		s.t.Fatalf("delete %s: %v", dn, err)
	}
	conn.Close()
}

// Dir is the server's directory (its slapd.conf, data/ and slapd.log).
func (s *Server) Dir() string { return s.dir }
