package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/identity"
	"github.com/certfleet/certfleet/sqlite"
)

// TestIdentityCommands: enroll-token prints a one-time token (and makes
// the CA), list shows the token and then the identity enrolled with it,
// revoke revokes it; bad flags exit 2.
func TestIdentityCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(cfgPath, []byte("state = \"certfleet.db\"\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "identity", "enroll-token", "-config", cfgPath, "-names", "web1.example.org", "-description", "web1")
	secret := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(secret, "cfe_") || !strings.Contains(errOut, "--enroll-token") {
		t.Fatalf("enroll-token: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "identity", "enroll-token", "-config", cfgPath, "-names", "x.example.org", "-permissions", "admin"); code != 2 || !strings.Contains(errOut, "admin") {
		t.Errorf("enroll-token -permissions admin: %d %s", code, errOut)
	}
	code, out, _ = runCLI(t, "identity", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "unused, expires") || strings.Contains(out, secret) {
		t.Errorf("list before enrollment: %d\n%s", code, out)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	iss, err := (&identity.Authority{Store: st}).Enroll(t.Context(), secret, "web1", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), "test")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	id := iss.Identity.ID
	code, out, _ = runCLI(t, "identity", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "used by "+id) {
		t.Errorf("list after enrollment: %d\n%s", code, out)
	}
	if code, out, errOut := runCLI(t, "identity", "revoke", "-config", cfgPath, id); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "identity", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "revoked 20") {
		t.Errorf("list after revocation: %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "identity", "revoke", "-config", cfgPath, "idn_0000"); code == 0 {
		t.Errorf("revoking an unknown identity succeeded")
	}
	code, out, _ = runCLI(t, "audit", "-config", cfgPath, "-kind", "identity")
	if code != 0 || !strings.Contains(out, "enroll_token_created") || !strings.Contains(out, "revoked") {
		t.Errorf("audit of identities: %d\n%s", code, out)
	}
}
