package daemon_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/identity"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestAPIServesHostIdentities (issue 17): the daemon's TLS listener asks
// for client certificates; a host enrolled with the operator's one-time
// token reads its key over mutual TLS while, with
// require_client_cert_for_keys, the admin's bearer token reads certificates
// but no key; revoked by the operator (another Authority on the store, as
// the CLI), the identity is refused within a second without
// notifications (SQLite).
func TestAPIServesHostIdentities(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "[api]\nlisten = \"127.0.0.1:0\"\ntls_certificate = \"api\"\n"+
		"[identities]\nrequire_client_cert_for_keys = true\n"+
		// No self-test before ordering: the names are Pebble's, resolved by
		// nobody else.
		"[[certificate]]\nname = \"api\"\nidentifiers = [\"api.certfleet.test\"]\nself_test = false\n"+
		"[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\nself_test = false\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := t.Context()
	if rep, err := d.IssueOnce(ctx); err != nil || rep.Issued != 2 {
		t.Fatalf("issue: %+v, %v", rep.Results, err)
	}
	addr, _, err := d.StartAPI(ctx, daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var secret, info bytes.Buffer
	if err := daemon.EnrollToken(ctx, cfg, d.Store, identity.EnrollRequest{Names: []string{"web.certfleet.test"}}, &secret, &info); err != nil {
		t.Fatal(err)
	}
	transport := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots(), ServerName: "api.certfleet.test"}}
	}
	tr := transport()
	host := &httpapi.Client{BaseURL: "https://" + addr, HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	id, err := agent.Enroll(ctx, host, filepath.Join(dir, "agent", agent.IdentityDirName), strings.TrimSpace(secret.String()), "web1")
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	tr.TLSClientConfig.GetClientCertificate = id.GetClientCertificate
	tr.CloseIdleConnections() // the enrollment's connection had no certificate
	if key, err := host.Fetch(ctx, "web.certfleet.test", "privkey", httpapi.FetchOptions{}); err != nil || !bytes.Contains(key.Data, []byte("PRIVATE KEY")) {
		t.Fatalf("the host identity reads its key: %v", err)
	}
	ts, _ := daemon.APIStore(d.Store)
	_, adminSecret, err := daemon.CreateToken(ctx, ts, "admin", []string{"*"}, []certfleet.Permission{certfleet.PermAdmin}, false)
	if err != nil {
		t.Fatal(err)
	}
	admin := &httpapi.Client{BaseURL: "https://" + addr, Token: adminSecret, HTTPClient: &http.Client{Transport: transport(), Timeout: 10 * time.Second}}
	var p *httpapi.Problem
	if _, err := admin.Fetch(ctx, "web.certfleet.test", "privkey", httpapi.FetchOptions{}); !errors.As(err, &p) || p.Status != 403 {
		t.Errorf("admin token reads a key with require_client_cert_for_keys: %v, want 403", err)
	}
	if _, err := admin.Fetch(ctx, "web.certfleet.test", "cert", httpapi.FetchOptions{}); err != nil {
		t.Errorf("admin token reads a certificate: %v", err)
	}

	if err := daemon.RevokeIdentity(ctx, cfg, d.Store, id.ID()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		tr.CloseIdleConnections() // a new handshake each time
		_, err := host.Fetch(ctx, "web.certfleet.test", "cert", httpapi.FetchOptions{})
		if err != nil {
			break
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("the revoked identity is still served %s after the revocation", time.Since(revoked))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("refused %s after the revocation", time.Since(revoked).Round(time.Millisecond))
}
