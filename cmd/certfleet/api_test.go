package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
)

// TestTokenCommands creates, lists and revokes a token with the CLI and
// uses it against the API served by the daemon wiring.
func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "certfleet.toml")
	cfg := "state = \"certfleet.db\"\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n[api]\nlisten = \"127.0.0.1:0\"\n" +
		"[[certificate]]\nname = \"web\"\nidentifiers = [\"web.example.org\"]\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := Run(t.Context(), args, &out, &errb)
		return out.String(), errb.String(), code
	}
	secret, stderr, code := run("token", "create", "-config", cfgPath, "-names", "*.example.org", "-permissions", "read-certs,request-names", "-description", "panel")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "cft_") {
		t.Fatalf("token create: %d %q %s", code, secret, stderr)
	}
	if _, _, code := run("token", "create", "-config", cfgPath, "-names", "*.example.org", "-permissions", "admin", "-url"); code != 2 {
		t.Errorf("an admin URL credential was accepted (exit %d)", code)
	}
	if _, _, code := run("token", "create", "-config", cfgPath, "-names", "exa_mple.org"); code != 2 {
		t.Errorf("a bad pattern was accepted (exit %d)", code)
	}
	list, _, code := run("token", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(list, "panel") || strings.Contains(list, secret) {
		t.Fatalf("token list (%d):\n%s", code, list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]

	// The daemon wiring serves the API; the token works, then is revoked.
	c, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), c, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil || addr == "" {
		t.Fatalf("StartAPI: %q, %v", addr, err)
	}
	client := &httpapi.Client{BaseURL: "http://" + addr, Token: secret}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, _, _, err := client.Status(ctx, "web.example.org", httpapi.FetchOptions{}); err != nil {
		t.Fatalf("status with the new token: %v", err)
	}
	if _, _, code := run("token", "revoke", "-config", cfgPath, id); code != 0 {
		t.Fatalf("token revoke: exit %d", code)
	}
	// Revocation bites within the API's token cache time (one second,
	// documented in docs/api.md), also when another process revoked it.
	revoked := time.Now()
	for {
		var p *httpapi.Problem
		_, _, _, err := client.Status(ctx, "web.example.org", httpapi.FetchOptions{})
		if errors.As(err, &p) && p.Status == http.StatusUnauthorized {
			break
		}
		if time.Since(revoked) > 1500*time.Millisecond {
			t.Fatalf("status with the revoked token %v after revocation: %v, want 401", time.Since(revoked).Round(time.Millisecond), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
