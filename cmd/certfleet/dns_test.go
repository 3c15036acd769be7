package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/daemontest"
)

func TestDNS01IssueAndCheck(t *testing.T) {
	n := daemontest.StartDNSNet(t)
	path := n.Config(t, n.Secret, `
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
	if got := n.DNS.TXT("_acme-challenge.example.test"); len(got) != 0 {
		t.Errorf("check left TXT records: %q", got)
	}
	if n.CA.NewOrders() != 0 {
		t.Errorf("check placed %d orders", n.CA.NewOrders())
	}
	code, out, errOut = runCLI(t, "issue", "-config", path)
	if code != 0 || !strings.Contains(out, "issued   wild") {
		t.Fatalf("issue: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := n.DNS.TXT("_acme-challenge.example.test"); len(got) != 0 {
		t.Errorf("issue left TXT records: %q", got)
	}
}

func TestDNS01WrongTSIGPlacesNoOrder(t *testing.T) {
	n := daemontest.StartDNSNet(t)
	b := make([]byte, 32)
	rand.Read(b)
	wrong := base64.StdEncoding.EncodeToString(b)
	path := n.Config(t, wrong, `
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
	if got := n.CA.NewOrders(); got != 0 {
		t.Errorf("CA saw %d new orders, want 0: a wrong TSIG secret must be found before ordering", got)
	}
}

func TestCheckCAA(t *testing.T) {
	n := daemontest.StartDNSNet(t)
	path := n.Config(t, n.Secret, `
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
		path := n.Config(t, n.Secret, fmt.Sprintf(`
[accounts.x]
directory = %q
caa_identities = %s
[[certificate]]
name = "caa"
identifiers = ["www.caa.test"]
challenge = "dns-01"
account = "x"
`, n.CA.DirectoryURL(), tc.identities))
		code, out, errOut := runCLI(t, "check", "-config", path)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("caa_identities = %s: exit %d, want %d and %q:\n%s\n%s", tc.identities, code, tc.code, tc.want, out, errOut)
		}
	}
}
