package daemon_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/seal"
)

// TestACMEDNSCredentialsInStore: with a master key, acme-dns registrations
// live in the store (shared by every instance), a file left in state_dir
// from before is moved in and removed, and an explicit credentials_file or a
// store without a master key keeps the file.
func TestACMEDNSCredentialsInStore(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	generateKey(t, key)
	state := filepath.Join(dir, "state.db")
	st := openForTest(t, state, key)
	defer st.Close()
	cfg := &config.Config{State: state, StateDir: dir}
	p := config.DNSProvider{Name: "Main", Type: config.DNSProviderACMEDNS}
	old := filepath.Join(dir, "acme-dns-Main.json")
	doc := []byte(`{"example.org": {"username": "u", "password": "p-secret", "fulldomain": "x.auth.example", "subdomain": "x"}}`)
	if err := os.WriteFile(old, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	creds, err := daemon.ACMEDNSCredentials(t.Context(), cfg, p, st, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := creds.String(); got != "the store (secret acme-dns.main)" {
		t.Fatalf("credentials in %s, want the store", got)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old credentials file is still there: %v", err)
	}
	if v, err := st.Secret(t.Context(), "acme-dns.main"); err != nil || !bytes.Equal(v, doc) {
		t.Fatalf("stored credentials = %q, %v", v, err)
	}
	// A second instance (a new provider on the same store) sees them.
	again, err := daemon.ACMEDNSCredentials(t.Context(), cfg, p, st, log)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := again.Load(t.Context()); err != nil || !bytes.Equal(v, doc) {
		t.Fatalf("second instance loads %q, %v", v, err)
	}

	p.CredentialsFile = filepath.Join(dir, "explicit.json")
	if c, _ := daemon.ACMEDNSCredentials(t.Context(), cfg, p, st, log); c.String() != p.CredentialsFile {
		t.Errorf("explicit credentials_file: using %s", c)
	}
	p.CredentialsFile = ""
	plain := openForTest(t, filepath.Join(t.TempDir(), "plain.db"), "")
	defer plain.Close()
	if c, _ := daemon.ACMEDNSCredentials(t.Context(), cfg, p, plain, log); c.String() != old {
		t.Errorf("store without master key: using %s, want the file %s", c, old)
	}
}

// generateKey writes a new master key file at path.
func generateKey(t *testing.T, path string) {
	t.Helper()
	key, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	defer clear(key)
	if err := seal.WriteMasterKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
}

// openForTest opens the SQLite store at state with the master key file
// keyFile ("" for none).
func openForTest(t *testing.T, state, keyFile string) certfleet.Store {
	t.Helper()
	keys, err := daemon.LoadKeys(config.MasterKey{File: keyFile}, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := daemon.OpenStore(t.Context(), state, keys, nil)
	if err != nil {
		t.Fatalf("open store with %s: %v", keyFile, err)
	}
	return st
}
