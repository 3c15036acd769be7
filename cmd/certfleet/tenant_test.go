package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestTenantCommands: certfleet tenant create, set, list and delete,
// certfleet account declare and forget, and token create -tenant, against a
// real store, each change in the audit trail.
func TestTenantCommands(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "")
	key := filepath.Join(dir, "master.key")
	generateKey(t, key)
	writeKeysConfig(t, dir, ca, path, filepath.Join(dir, "state.db"), key)
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runCLI(t, args...)
		if code != want {
			t.Fatalf("certfleet %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}
	eab := filepath.Join(dir, "eab.key")
	if err := os.WriteFile(eab, []byte(base64.RawURLEncoding.EncodeToString([]byte("an EAB MAC key of thirty-two bytes"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := run(0, "account", "declare", "-config", path, "acme-le", "directory="+ca.DirectoryURL(), "email=ops@acme.example",
		"eab_key_id=kid-1", "eab_hmac_key_file="+eab, "trusted_roots="+filepath.Join(dir, "ca.pem"))
	if !strings.Contains(out, "account acme-le declared") {
		t.Errorf("account declare: %s", out)
	}
	_, errOut := run(1, "account", "declare", "-config", path, "default", "directory="+ca.DirectoryURL())
	if !strings.Contains(errOut, "always wins") {
		t.Errorf("declaring the config's account: %s", errOut)
	}
	out, _ = run(0, "tenant", "create", "-config", path, "acme", "names=acme.example,*.acme.example", "account=acme-le", "max_names=10", "description=customer 1")
	if !strings.Contains(out, "acme.example,*.acme.example") || !strings.Contains(out, "0 of 10") || !strings.Contains(out, "acme-le") {
		t.Errorf("tenant create printed:\n%s", out)
	}
	_, errOut = run(1, "tenant", "create", "-config", path, "other", "names=www.acme.example")
	if !strings.Contains(errOut, "overlaps") {
		t.Errorf("an overlapping tenant: %s", errOut)
	}
	_, errOut = run(2, "tenant", "create", "-config", path, "bad", "names=b.example", "account=nowhere")
	if !strings.Contains(errOut, `account "nowhere" is not configured`) {
		t.Errorf("a tenant with an unknown account: %s", errOut)
	}
	_, errOut = run(2, "tenant", "set", "-config", path, "acme", "colour=blue")
	if !strings.Contains(errOut, "unknown setting") {
		t.Errorf("an unknown setting: %s", errOut)
	}
	out, _ = run(0, "tenant", "set", "-config", path, "acme", "orders_per_week=50")
	if !strings.Contains(out, "0 of 10") || !strings.Contains(out, "50") {
		t.Errorf("tenant set printed:\n%s", out)
	}
	secret, errOut := run(0, "token", "create", "-config", path, "-tenant", "acme", "-names", "*.acme.example", "-permissions", "read-keys,request-names")
	if !strings.HasPrefix(secret, certfleet.TokenPrefix) {
		t.Fatalf("token create -tenant: %q %s", secret, errOut)
	}
	_, errOut = run(2, "token", "create", "-config", path, "-tenant", "acme", "-names", "*.other.example")
	if !strings.Contains(errOut, "not within tenant") {
		t.Errorf("a tenant's token outside its names: %s", errOut)
	}
	_, errOut = run(2, "token", "create", "-config", path, "-tenant", "acme", "-names", "*.acme.example", "-permissions", "admin")
	if !strings.Contains(errOut, "admin") {
		t.Errorf("a tenant's admin token: %s", errOut)
	}
	out, _ = run(0, "token", "list", "-config", path)
	if !strings.Contains(out, "TENANT") || !strings.Contains(out, "acme") {
		t.Errorf("token list:\n%s", out)
	}
	out, _ = run(0, "tenant", "list", "-config", path)
	if !strings.Contains(out, "acme") || !strings.Contains(out, "customer 1") {
		t.Errorf("tenant list:\n%s", out)
	}
	_, errOut = run(1, "account", "forget", "-config", path, "acme-le")
	if !strings.Contains(errOut, "tenant acme") {
		t.Errorf("forgetting an account a tenant uses: %s", errOut)
	}
	out, _ = run(0, "tenant", "delete", "-config", path, "acme")
	if !strings.Contains(out, "0 certificate(s) withdrawn, 1 token(s) revoked") {
		t.Errorf("tenant delete: %s", out)
	}
	run(0, "account", "forget", "-config", path, "acme-le")
	out, _ = run(0, "audit", "-config", path, "--kind", "tenant")
	for _, want := range []string{"tenant acme: names acme.example", "orders_per_week 50", "tenant acme deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit trail of tenant changes lacks %q:\n%s", want, out)
		}
	}
	out, _ = run(0, "audit", "-config", path, "--kind", "account")
	if !strings.Contains(out, "account acme-le declared") || !strings.Contains(out, "declared account acme-le deleted") {
		t.Errorf("audit trail of declared accounts:\n%s", out)
	}
}
