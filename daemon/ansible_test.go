package daemon_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/export"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

const exportCerts = `
[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
key_types = ["ecdsa-p256", "rsa2048"]

[[certificate]]
name = %q
identifiers = [%s]
`

// exportConfig writes dir's config: the web (dual) and mail certificates
// (mail with the identifiers mailIDs) and [export] into dir/inventory with
// hosts, and returns it loaded.
func exportConfig(t *testing.T, dir string, ca *pebbleca.CA, port int, mailIDs, hosts string) *config.Config {
	t.Helper()
	pw := filepath.Join(dir, "vault-password")
	if err := os.WriteFile(pw, []byte("vault-test-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(exportCerts, "mail", mailIDs)+fmt.Sprintf(`
[export]
dir = "inventory"
vault_password_file = %q

[export.hosts]
%s
`, pw, hosts))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runExport runs certfleet export's work and returns its output.
func runExport(t *testing.T, cfg *config.Config, d *daemon.Daemon) (string, error) {
	t.Helper()
	var out strings.Builder
	err := daemon.Export(t.Context(), cfg, d.Store, &out)
	t.Logf("certfleet export:\n%s", out.String())
	return out.String(), err
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// current returns the current issuance of name's key type kt.
func current(t *testing.T, d *daemon.Daemon, name string, kt certfleet.KeyType) certfleet.Issuance {
	t.Helper()
	j, err := d.Store.Job(t.Context(), certfleet.JobKey{Spec: name, KeyType: kt})
	if err != nil || j.CurrentID == 0 {
		t.Fatalf("job %s/%s: %+v, %v", name, kt, j, err)
	}
	iss, err := d.Store.Issuance(t.Context(), j.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// checkExported fails the test unless dir holds iss as the export writes
// it: the leaf, the chain, the full chain, and the key in a vault file
// (mode 0600) that the real ansible-vault decrypts to the key.
func checkExported(t *testing.T, dir string, iss certfleet.Issuance, pwfile string) {
	t.Helper()
	leaf, chain, err := iss.SplitChain()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"cert.pem": leaf, "chain.pem": chain, "fullchain.pem": iss.ChainPEM} {
		if got := mustRead(t, filepath.Join(dir, name)); !bytes.Equal(got, want) {
			t.Errorf("%s/%s differs from %s's certificate %s", dir, name, iss.Spec, iss.Serial)
		}
	}
	key := filepath.Join(dir, "privkey.pem")
	data := mustRead(t, key)
	if !bytes.HasPrefix(data, []byte("$ANSIBLE_VAULT;1.1;AES256\n")) || bytes.Contains(data, []byte("PRIVATE KEY")) {
		t.Fatalf("%s is not an Ansible Vault file: %.60q", key, data)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, %v; want 0600", key, fi.Mode().Perm(), err)
	}
	if got := daemontest.VaultView(t, key, pwfile); !bytes.Equal(got, iss.KeyPEM) {
		t.Errorf("ansible-vault decrypts %s to something else than %s's key", key, iss.Spec)
	}
}

// TestExportAnsibleInventory (issue 18 §3): certfleet export writes the
// certificates of real issuances through Pebble into an Ansible inventory,
// each host getting those its patterns name, keys vaulted so that the real
// ansible-vault decrypts them; a second run writes nothing; after a
// renewal only the renewed certificate's files change (a key whose
// plaintext is unchanged keeps its ciphertext); a host that no longer
// needs a certificate loses its files, and nothing the export did not
// write is overwritten or removed.
func TestExportAnsibleInventory(t *testing.T) {
	daemontest.AnsibleVault(t)
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	pwfile := filepath.Join(dir, "vault-password") // exportConfig writes it
	hosts := `web1 = ["web"]
mx1 = ["mail.*"]
lb1 = ["*"]`
	cfg := exportConfig(t, dir, ca, port, `"mail.certfleet.test"`, hosts)
	clk := daemontest.NewClock(time.Now())
	d := daemontest.OpenDaemon(t, cfg.File, clk)
	inv := filepath.Join(dir, "inventory", "host_files")

	// Before any issuance: nothing to write, what is pending said.
	out, err := runExport(t, cfg, d)
	if err != nil || !strings.Contains(out, "pending  web1: web/ecdsa-p256: no certificate yet") || !strings.Contains(out, "0 file(s) written") {
		t.Fatalf("export before issuance: %v\n%s", err, out)
	}
	if issued, _ := daemontest.RunOnce(t, d); issued != 3 {
		t.Fatal("issuance failed")
	}
	if _, err := runExport(t, cfg, d); err != nil {
		t.Fatal(err)
	}
	webE, webR := current(t, d, "web", certfleet.ECDSAP256), current(t, d, "web", certfleet.RSA2048)
	mail := current(t, d, "mail", certfleet.ECDSAP256)
	checkExported(t, filepath.Join(inv, "web1", "web", "ecdsa"), webE, pwfile)
	checkExported(t, filepath.Join(inv, "web1", "web", "rsa"), webR, pwfile)
	checkExported(t, filepath.Join(inv, "mx1", "mail"), mail, pwfile)
	checkExported(t, filepath.Join(inv, "lb1", "mail"), mail, pwfile)
	checkExported(t, filepath.Join(inv, "lb1", "web", "rsa"), webR, pwfile)
	if _, err := os.Stat(filepath.Join(inv, "mx1", "web")); err == nil {
		t.Error("mx1 got web, which its patterns do not name")
	}
	webKey := filepath.Join(inv, "web1", "web", "ecdsa", "privkey.pem")
	webKeyVault := mustRead(t, webKey)
	mailKeyVault := mustRead(t, filepath.Join(inv, "mx1", "mail", "privkey.pem"))

	// Nothing changed: nothing written, the vault files as they were.
	if out, err := runExport(t, cfg, d); err != nil || !strings.Contains(out, "0 file(s) written, 24 unchanged, 0 removed") {
		t.Fatalf("second export: %v\n%s", err, out)
	}
	if !bytes.Equal(mustRead(t, webKey), webKeyVault) {
		t.Fatal("a second export re-encrypted an unchanged key")
	}

	// mail is renewed (a name added): only its files that changed are
	// written (its chain.pem, the same intermediate, is not).
	cfg = exportConfig(t, dir, ca, port, `"mail.certfleet.test", "smtp.certfleet.test"`, hosts)
	if err := d.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Now())
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("renewal of mail failed")
	}
	out, err = runExport(t, cfg, d)
	if err != nil || !strings.Contains(out, "6 file(s) written, 18 unchanged, 0 removed") || strings.Contains(out, "web/") {
		t.Fatalf("export after mail's renewal: %v\n%s", err, out)
	}
	renewed := current(t, d, "mail", certfleet.ECDSAP256)
	checkExported(t, filepath.Join(inv, "mx1", "mail"), renewed, pwfile)
	if bytes.Equal(mustRead(t, filepath.Join(inv, "mx1", "mail", "privkey.pem")), mailKeyVault) {
		t.Error("mail's new key was not written")
	}
	if !bytes.Equal(mustRead(t, webKey), webKeyVault) {
		t.Error("web's unchanged key was re-encrypted")
	}

	// mx1 needs mail no more (its host removed); db1 is added, with a file
	// of someone else's where the export would write.
	notes := filepath.Join(inv, "mx1", "notes.txt")
	if err := os.WriteFile(notes, []byte("the operator's own file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(inv, "db1", "mail", "cert.pem")
	if err := os.MkdirAll(filepath.Dir(foreign), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(foreign, []byte("not certfleet's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = exportConfig(t, dir, ca, port, `"mail.certfleet.test", "smtp.certfleet.test"`, `web1 = ["web"]
lb1 = ["*"]
db1 = ["smtp.certfleet.test"]`)
	out, err = runExport(t, cfg, d)
	if err == nil || !strings.Contains(err.Error(), foreign+" exists and was not written by certfleet export") {
		t.Fatalf("export over a foreign file: %v; want it refused", err)
	}
	if got := mustRead(t, foreign); string(got) != "not certfleet's\n" {
		t.Fatalf("the foreign file was overwritten: %q", got)
	}
	if _, err := os.Stat(filepath.Join(inv, "mx1", "mail", "cert.pem")); err != nil {
		t.Fatalf("a failing export removed files: %v", err)
	}
	if err := os.Remove(foreign); err != nil {
		t.Fatal(err)
	}
	out, err = runExport(t, cfg, d)
	if err != nil || !strings.Contains(out, "4 removed") || !strings.Contains(out, "removed  host_files/mx1/mail/privkey.pem") {
		t.Fatalf("export after mx1 left: %v\n%s", err, out)
	}
	checkExported(t, filepath.Join(inv, "db1", "mail"), renewed, pwfile)
	if _, err := os.Stat(filepath.Join(inv, "mx1", "mail")); err == nil {
		t.Error("mx1/mail still exists; want it removed with its files")
	}
	if got := mustRead(t, notes); string(got) != "the operator's own file\n" {
		t.Errorf("the operator's file changed: %q", got)
	}
}

// TestExportAfterRenewalUnderServe (issue 18 §3): with after_renewal,
// serve exports at its start and again after a renewal.
func TestExportAfterRenewalUnderServe(t *testing.T) {
	daemontest.AnsibleVault(t)
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	cfg := exportConfig(t, dir, ca, port, `"mail.certfleet.test"`, "mx1 = [\"mail\"]\n")
	text := strings.Replace(string(mustRead(t, cfg.File)), "[export]\n", "[export]\nafter_renewal = true\n", 1)
	if err := os.WriteFile(cfg.File, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	d := daemontest.OpenDaemon(t, cfg.File, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	certFile := filepath.Join(dir, "inventory", "host_files", "mx1", "mail", "cert.pem")
	exportedSerial := func() string {
		b, err := os.ReadFile(certFile)
		if err != nil {
			return ""
		}
		leaf, err := pemLeafSerial(b)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the first export", func() bool { return exportedSerial() != "" })
	first := current(t, d, "mail", certfleet.ECDSAP256)
	waitFor("the first certificate's export", func() bool { return exportedSerial() == first.Serial })

	next := exportConfig(t, dir, ca, port, `"mail.certfleet.test", "smtp.certfleet.test"`, "mx1 = [\"mail\"]\n")
	next.Export.AfterRenewal = true
	if err := d.Reload(ctx, next); err != nil {
		t.Fatal(err)
	}
	var renewed certfleet.Issuance
	waitFor("the renewed certificate's export", func() bool {
		renewed = current(t, d, "mail", certfleet.ECDSAP256)
		full, _ := os.ReadFile(filepath.Join(filepath.Dir(certFile), "fullchain.pem")) // the last file written
		return renewed.Serial != first.Serial && bytes.Equal(full, renewed.ChainPEM)
	})
	if got := exportedSerial(); got != renewed.Serial {
		t.Fatalf("exported serial %s, want the renewed %s", got, renewed.Serial)
	}
	checkExported(t, filepath.Dir(certFile), renewed, filepath.Join(dir, "vault-password"))
}

// pemLeafSerial returns the hex serial of the first certificate in b.
func pemLeafSerial(b []byte) (string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("no PEM")
	}
	iss := certfleet.Issuance{ChainPEM: pem.EncodeToMemory(block)}
	leaf, err := iss.Leaf()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", leaf.SerialNumber), nil
}

// TestExporterRunsAgain: an Exporter that runs again (serve's) trusts
// what it remembers of a key file only while the file and the password are
// as it left them: a key file changed behind its back, or a new vault
// password, is written again.
func TestExporterRunsAgain(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	d := daemontest.OpenDaemon(t, daemontest.WriteConfig(t, dir, ca, port, "[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\n"), nil)
	if issued, _ := daemontest.RunOnce(t, d); issued != 1 {
		t.Fatal("issuance failed")
	}
	x := &export.Exporter{Store: d.Store, Dir: filepath.Join(dir, "inventory"), Hosts: []export.Host{{Name: "web1", Certificates: []string{"web"}}},
		VaultPassword: []byte("first-password")}
	run := func(wantWritten int) {
		t.Helper()
		rep, err := x.Run(t.Context())
		if err != nil || len(rep.Written) != wantWritten {
			t.Fatalf("run = %+v, %v; want %d written", rep, err, wantWritten)
		}
	}
	run(4)
	run(0)
	key := filepath.Join(dir, "inventory", "host_files", "web1", "web", "privkey.pem")
	other, err := export.EncryptVault([]byte("someone else's key\n"), x.VaultPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, other, 0o600); err != nil {
		t.Fatal(err)
	}
	run(1)
	want := current(t, d, "web", certfleet.ECDSAP256).KeyPEM
	if got, err := export.DecryptVault(mustRead(t, key), x.VaultPassword); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the key file changed behind the exporter's back was not rewritten (%v)", err)
	}
	x.VaultPassword = []byte("second-password")
	run(1)
	if got, err := export.DecryptVault(mustRead(t, key), x.VaultPassword); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the key is not under the new password (%v)", err)
	}
	run(0)
}
