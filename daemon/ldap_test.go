package daemon_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// slapd is an OpenLDAP server of the test's own, on a loopback port.
type slapd struct {
	uri, base, binddn, pwfile string
}

// startSlapd runs Debian's slapd (.ci/install-slapd.sh) with its own
// configuration and database under a temporary directory, stopped when
// the test ends, holding dc=example,dc=org with ou=sites and the entries
// of ldif. Without slapd the test is skipped, loudly, or fails under CI.
func startSlapd(t *testing.T, ldif string) *slapd {
	t.Helper()
	bin := "/usr/sbin/slapd"
	if _, err := os.Stat(bin); err != nil {
		msg := "the LDAP write-back recipe's test needs slapd and ldap-utils: bash .ci/install-slapd.sh"
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s is missing: %s", bin, msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	for _, tool := range []string{"ldapadd", "ldapsearch", "ldapmodify", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("slapd is installed but %s is not: bash .ci/install-slapd.sh (and apt-get install openssl)", tool)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &slapd{base: "dc=example,dc=org", binddn: "cn=admin,dc=example,dc=org", pwfile: filepath.Join(dir, "password")}
	if err := os.WriteFile(s.pwfile, []byte("ldap-test-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %s/slapd.pid
database mdb
maxsize 10485760
suffix "%s"
rootdn "%s"
rootpw ldap-test-password
directory %s
`, dir, s.base, s.binddn, data)), 0o600); err != nil {
		t.Fatal(err)
	}
	port := daemontest.FreePort(t)
	s.uri = fmt.Sprintf("ldap://127.0.0.1:%d/", port)
	var out bytes.Buffer
	cmd := exec.Command(bin, "-d", "0", "-f", conf, "-h", s.uri)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if exec.Command("ldapsearch", "-x", "-H", s.uri, "-b", "", "-s", "base").Run() == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("slapd exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not answer within 20 s: %s", out.String())
		}
	}
	s.modify(t, "ldapadd", `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=sites,dc=example,dc=org
objectClass: organizationalUnit
ou: sites

`+ldif)
	return s
}

// modify runs an ldap-utils command (ldapadd, ldapmodify) with ldif on
// stdin, bound as the administrator.
func (s *slapd) modify(t *testing.T, tool, ldif string) {
	t.Helper()
	cmd := exec.Command(tool, "-x", "-H", s.uri, "-D", s.binddn, "-y", s.pwfile)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

// certificates returns the userCertificate;binary values of the entry dn.
func (s *slapd) certificates(t *testing.T, dn string) [][]byte {
	t.Helper()
	out, err := exec.Command("ldapsearch", "-LLL", "-x", "-o", "ldif-wrap=no", "-H", s.uri, "-D", s.binddn, "-y", s.pwfile,
		"-b", dn, "-s", "base", "(objectClass=*)", "userCertificate;binary").CombinedOutput()
	if err != nil {
		t.Fatalf("ldapsearch %s: %v\n%s", dn, err, out)
	}
	var certs [][]byte
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "userCertificate;binary:: "); ok {
			der, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, der)
		}
	}
	return certs
}

// TestLDAPWriteBackRecipe (issue 18 §2): the write-back recipe of
// docs/events.md, examples/hooks/ldap-writeback.sh as a command hook, puts
// each new certificate of a real issuance through Pebble into the LDAP
// entries of its names on a real slapd, replacing it at renewal; entries
// of other names are left alone, and an event whose write fails (the entry
// cannot take a certificate) stays owed and is written once it can.
func TestLDAPWriteBackRecipe(t *testing.T) {
	s := startSlapd(t, `dn: cn=web,ou=sites,dc=example,dc=org
objectClass: device
objectClass: domainRelatedObject
objectClass: pkiUser
cn: web
associatedDomain: web.certfleet.test

dn: cn=other,ou=sites,dc=example,dc=org
objectClass: device
objectClass: domainRelatedObject
objectClass: pkiUser
cn: other
associatedDomain: other.certfleet.test
`)
	script, err := filepath.Abs("../examples/hooks/ldap-writeback.sh")
	if err != nil {
		t.Fatal(err)
	}
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]

[events.hooks.ldap]
type = "command"
command = [%q, %q, %q, %q, "ou=sites,dc=example,dc=org"]
types = ["issued", "renewed"]
`, script, s.uri, s.binddn, s.pwfile))
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, path, clk)
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("issuance failed")
	}
	if rep, err := d.HookRound(t.Context()); err != nil || rep.Sent != 1 {
		t.Fatalf("hook round = %+v, %v; want the issued event written", rep, err)
	}
	first := daemontest.Current(t, d, "web")
	leaf, _ := pem.Decode(first.ChainPEM)
	if got := s.certificates(t, "cn=web,ou=sites,dc=example,dc=org"); len(got) != 1 || !bytes.Equal(got[0], leaf.Bytes) {
		t.Fatalf("LDAP holds %d certificate(s) for web; want the issued one", len(got))
	}
	if got := s.certificates(t, "cn=other,ou=sites,dc=example,dc=org"); len(got) != 0 {
		t.Fatalf("LDAP holds a certificate for another name's entry")
	}

	// A renewal (a name added) replaces it; the first delivery fails
	// while the entry cannot take it (pkiUser removed), and is written
	// once it can.
	s.modify(t, "ldapmodify", "dn: cn=web,ou=sites,dc=example,dc=org\nchangetype: modify\ndelete: userCertificate;binary\n-\ndelete: objectClass\nobjectClass: pkiUser\n")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(text, []byte(`identifiers = ["web.certfleet.test"]`),
		[]byte(`identifiers = ["web.certfleet.test", "www.web.certfleet.test"]`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	next, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Now()) // the store made the job due by its own clock
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("renewal failed")
	}
	if _, err := d.HookRound(t.Context()); err == nil || !strings.Contains(err.Error(), "1 event delivery(ies) to hooks failed") {
		t.Fatalf("hook round while the entry refuses certificates: %v; want the delivery failed", err)
	}
	s.modify(t, "ldapmodify", "dn: cn=web,ou=sites,dc=example,dc=org\nchangetype: modify\nadd: objectClass\nobjectClass: pkiUser\n")
	clk.Set(clk.Now().Add(time.Hour)) // past the backoff
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if rep, err := d.HookRound(ctx); err != nil || rep.Sent != 1 {
		t.Fatalf("hook round once the entry takes certificates = %+v, %v; want the renewal written", rep, err)
	}
	second := daemontest.Current(t, d, "web")
	leaf, _ = pem.Decode(second.ChainPEM)
	if got := s.certificates(t, "cn=web,ou=sites,dc=example,dc=org"); len(got) != 1 || !bytes.Equal(got[0], leaf.Bytes) || second.Serial == first.Serial {
		t.Fatalf("LDAP holds %d certificate(s) for web after the renewal; want the renewed one alone", len(got))
	}
}
