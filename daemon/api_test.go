package daemon_test

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestAPIServesTLSWithManagedCertificate: with [api] tls_certificate, the
// API speaks TLS with the current certificate of that [[certificate]],
// issued by certfleet itself.
func TestAPIServesTLSWithManagedCertificate(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "[api]\nlisten = \"127.0.0.1:0\"\ntls_certificate = \"api\"\n"+
		"[[certificate]]\nname = \"api\"\nidentifiers = [\"api.certfleet.test\"]\n")
	_, d := mustOpenDaemon(t, path, daemon.Options{StartResponders: true})
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("issue: %+v, %v", rep.Results, err)
	}
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil || addr == "" {
		t.Fatalf("StartAPI: %q, %v", addr, err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Roots(), ServerName: "api.certfleet.test"},
	}}
	resp, err := client.Get("https://" + addr + "/v1/openapi.json")
	if err != nil {
		t.Fatalf("HTTPS to the API with the CA's roots and its name: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET openapi.json over TLS: %s", resp.Status)
	}
	job, err := d.Store.Job(t.Context(), certfleet.JobKey{Spec: "api", KeyType: certfleet.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := d.Store.Issuance(t.Context(), job.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Text(16); got != iss.Serial {
		t.Fatalf("API served serial %s, want the managed certificate's %s", got, iss.Serial)
	}
}

// TestAPIRevokeWithDNS01: with dns-01 configured, the scheduler's issuers
// are wrapped by the dns-01 preflight; DELETE ?revoke=true over the API must
// still reach the CA (the wrapper once hid Revoke, and the API answered that
// the account cannot revoke).
func TestAPIRevokeWithDNS01(t *testing.T) {
	n := daemontest.StartDNSNet(t)
	path := n.Config(t, n.Secret, "[api]\nlisten = \"127.0.0.1:0\"\n")
	_, d := mustOpenDaemon(t, path, daemon.Options{StartResponders: true})
	ts, err := daemon.APIStore(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := daemon.CreateToken(t.Context(), ts, "test", []string{"*"}, []certfleet.Permission{certfleet.PermAdmin}, false)
	if err != nil {
		t.Fatal(err)
	}
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
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
	if got, _ := daemontest.CACertStatus(t, n.CA, isss[0].Serial); got != "Revoked" {
		t.Fatalf("after DELETE ?revoke=true the CA says %q, want Revoked", got)
	}
}
