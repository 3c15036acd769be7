package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/httpapi"

	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
)

// dnsTestNet is an authoritative DNS server that accepts TSIG-signed
// updates and also answers as the resolver (chasing CNAMEs, as a CA's
// recursive resolver does), and a Pebble whose validator asks it.
type dnsTestNet struct {
	dns    *dnstest.Server
	ca     *pebbleca.CA
	secret string
}

func newDNSTestNet(t *testing.T) *dnsTestNet {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	n := &dnsTestNet{secret: base64.StdEncoding.EncodeToString(b)}
	var err error
	n.dns, err = dnstest.Start("127.0.0.1", "0", map[string]string{"certfleet.": n.secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.dns.Close() })
	n.dns.ChaseCNAME = true
	n.dns.AddZone("example.test", "ns1.example.test")
	n.dns.AddZone("caa.test", "ns1.example.test")
	n.dns.Add("ns1.example.test. 60 IN A 127.0.0.1", `caa.test. 60 IN CAA 0 issue "other-ca.example"`)
	n.ca, err = pebbleca.Start(t.Context(), pebbleca.Config{ResolverAddr: n.dns.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ca.Close() })
	return n
}

func (n *dnsTestNet) config(t *testing.T, secret, certs string) string {
	t.Helper()
	return writeConfig(t, t.TempDir(), n.ca, freePort(t), fmt.Sprintf(`
[dns01]
nameservers = [%q]
authoritative_port = %s
propagation_timeout = "20s"
[dns01.providers.bind]
type = "rfc2136"
key_name = "certfleet"
secret = %q
%s`, n.dns.Addr(), n.dns.Port(), secret, certs))
}

func TestDNS01IssueAndCheck(t *testing.T) {
	n := newDNSTestNet(t)
	path := n.config(t, n.secret, `
[[certificate]]
name = "wild"
identifiers = ["*.example.test", "example.test"]
challenge = "dns-01"
`)
	code, out, errOut := runCLI(t, "check", "-config", path)
	if code != 0 {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"ok    *.example.test", "ok    example.test", "test record added via bind", "no CAA records"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if got := n.dns.TXT("_acme-challenge.example.test"); len(got) != 0 {
		t.Errorf("check left TXT records: %q", got)
	}
	if n.ca.NewOrders() != 0 {
		t.Errorf("check placed %d orders", n.ca.NewOrders())
	}
	code, out, errOut = runCLI(t, "issue", "-config", path)
	if code != 0 || !strings.Contains(out, "issued   wild") {
		t.Fatalf("issue: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := n.dns.TXT("_acme-challenge.example.test"); len(got) != 0 {
		t.Errorf("issue left TXT records: %q", got)
	}
}

func TestDNS01WrongTSIGPlacesNoOrder(t *testing.T) {
	n := newDNSTestNet(t)
	b := make([]byte, 32)
	rand.Read(b)
	wrong := base64.StdEncoding.EncodeToString(b)
	path := n.config(t, wrong, `
[[certificate]]
name = "www"
identifiers = ["www.example.test"]
challenge = "dns-01"
`)
	code, out, errOut := runCLI(t, "check", "-config", path)
	if code != 1 || !strings.Contains(out, "FAIL  www.example.test") || !strings.Contains(out, "rejected TSIG key certfleet ") {
		t.Errorf("check: exit %d, want 1 and a FAIL line naming the key:\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(out+errOut, "no order placed") {
		t.Errorf("issue: exit %d, want 1 and the preflight's error:\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, wrong) {
		t.Error("the TSIG secret appears in the output")
	}
	if got := n.ca.NewOrders(); got != 0 {
		t.Errorf("CA saw %d new orders, want 0: a wrong TSIG secret must be found before ordering", got)
	}
}

func TestCheckCAA(t *testing.T) {
	n := newDNSTestNet(t)
	path := n.config(t, n.secret, `
[[certificate]]
name = "caa"
identifiers = ["www.caa.test"]
challenge = "dns-01"
`)
	// The CA's identity is unknown (a Pebble URL): check says so.
	code, out, _ := runCLI(t, "check", "-config", path)
	if code != 1 || !strings.Contains(out, "set caa_identities") {
		t.Errorf("check: exit %d, want 1 and a hint at caa_identities:\n%s", code, out)
	}
	for _, tc := range []struct {
		identities string
		code       int
		want       string
	}{
		{`["letsencrypt.org"]`, 1, `CAA issue records at caa.test. permit only ["other-ca.example"]`},
		{`["other-ca.example"]`, 0, "CAA issue at caa.test. permits other-ca.example"},
	} {
		path := n.config(t, n.secret, fmt.Sprintf(`
[accounts.x]
directory = %q
caa_identities = %s
[[certificate]]
name = "caa"
identifiers = ["www.caa.test"]
challenge = "dns-01"
account = "x"
`, n.ca.DirectoryURL(), tc.identities))
		code, out, errOut := runCLI(t, "check", "-config", path)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("caa_identities = %s: exit %d, want %d and %q:\n%s\n%s", tc.identities, code, tc.code, tc.want, out, errOut)
		}
	}
}

// TestAPIRevokeWithDNS01: with dns-01 configured, the scheduler's issuers
// are wrapped by the dns-01 preflight; DELETE ?revoke=true over the API must
// still reach the CA (the wrapper once hid Revoke, and the API answered that
// the account cannot revoke).
func TestAPIRevokeWithDNS01(t *testing.T) {
	n := newDNSTestNet(t)
	path := n.config(t, n.secret, "[api]\nlisten = \"127.0.0.1:0\"\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDaemon(t.Context(), cfg, DaemonOptions{StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ts, err := apiStore(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := createToken(t.Context(), ts, "test", []string{"*"}, []certfleet.Permission{certfleet.PermAdmin}, false)
	if err != nil {
		t.Fatal(err)
	}
	addr, _, err := d.StartAPI(t.Context(), APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &httpapi.Client{BaseURL: "http://" + addr, Token: secret}
	const name = "api.example.test"
	if _, err := c.PutName(t.Context(), name, &httpapi.NameRequest{Challenge: "dns-01"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("issue: %+v, %v", rep.Results, err)
	}
	isss, err := d.Store.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: name})
	if err != nil || len(isss) != 1 {
		t.Fatalf("issuances of %s: %d, %v", name, len(isss), err)
	}
	if err := c.DeleteName(t.Context(), name, true); err != nil {
		t.Fatalf("DELETE ?revoke=true with dns-01 configured: %v", err)
	}
	if got, _ := caCertStatus(t, n.ca, isss[0].Serial); got != "Revoked" {
		t.Fatalf("after DELETE ?revoke=true the CA says %q, want Revoked", got)
	}
}
