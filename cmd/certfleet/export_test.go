package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/hook"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestIssueSendsEventsAndExport (issue 18): certfleet issue, the cron
// path, sends the pass's events to a hook (the webhook refusing the first
// attempt makes the pass exit 1, and the next pass sends it), and
// certfleet export writes the issued certificate into the inventory with
// its key vaulted as ansible-vault reads it.
func TestIssueSendsEventsAndExport(t *testing.T) {
	daemontest.AnsibleVault(t)
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	recv := daemontest.NewHookReceiver(t, 1)
	pw := filepath.Join(dir, "vault-password")
	if err := os.WriteFile(pw, []byte("vault-test-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := daemontest.WriteConfig(t, dir, ca, port, `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
`+daemontest.WebhookHookSection(t, dir, "ops", recv, `types = ["issued"]`)+`
[export]
dir = "inventory"
vault_password_file = "vault-password"
[export.hosts]
web1 = ["web"]
`)
	code, out, errOut := runCLI(t, "issue", "-config", path)
	if code != 1 || !strings.Contains(out, "issued   web") || !strings.Contains(errOut, "1 event delivery(ies) to hooks failed") {
		t.Fatalf("issue with a refusing hook: exit %d, want 1 naming the delivery\n%s%s", code, out, errOut)
	}
	time.Sleep(hook.DefaultMinBackoff) // the failed delivery's backoff: the next cron run comes later anyway
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 || len(recv.Accepted()) != 1 || recv.Accepted()[0].Type != "issued" {
		t.Fatalf("second issue: exit %d, hook got %v\n%s%s", code, recv.Types(), out, errOut)
	}
	recv.Check(t)

	code, out, errOut = runCLI(t, "export", "-config", path)
	if code != 0 || !strings.Contains(out, "written  host_files/web1/web/privkey.pem") || !strings.Contains(out, "4 file(s) written") {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	key := daemontest.VaultView(t, filepath.Join(dir, "inventory", "host_files", "web1", "web", "privkey.pem"), pw)
	live, err := os.ReadFile(filepath.Join(dir, "live", "web", "privkey.pem"))
	if err != nil || !bytes.Equal(key, live) {
		t.Fatalf("the vaulted key is not the certificate's key (%v)", err)
	}
	if code, out, _ := runCLI(t, "export", "-config", path); code != 0 || !strings.Contains(out, "0 file(s) written, 4 unchanged") {
		t.Fatalf("second export: exit %d\n%s", code, out)
	}

	// Without [export]: an error that says what to add.
	bare := daemontest.WriteConfig(t, t.TempDir(), ca, port, "")
	if code, _, errOut := runCLI(t, "export", "-config", bare); code != 1 || !strings.Contains(errOut, "has no [export] table") {
		t.Fatalf("export without [export]: exit %d, %s", code, errOut)
	}
}
