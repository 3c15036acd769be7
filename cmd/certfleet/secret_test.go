package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
)

// TestStoredTSIGSecret keeps a TSIG secret in the store instead of the
// config (secret = "store:tsig"), on SQLite and PostgreSQL: without the
// stored secret the start fails naming the setting and the command that
// fixes it; with it, check and a real dns-01 issuance (Pebble, RFC 2136)
// work; and neither the config nor a dump of the database holds the secret.
func TestStoredTSIGSecret(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			n := daemontest.StartDNSNet(t)
			path := n.Config(t, "store:tsig", `
[[certificate]]
name = "www"
identifiers = ["www.example.test"]
challenge = "dns-01"
`)
			dir := filepath.Dir(path)
			state := filepath.Join(dir, "state.db")
			dump := func() []byte { return sqliteDump(t, state) }
			if backend == "postgres" {
				state = pgtest.DSN(t)
				dump = func() []byte { return pgDump(t, state) }
			}
			key := filepath.Join(dir, "master.key")
			generateKey(t, key)
			writeKeysConfig(t, dir, n.CA, path, state, key)
			if backend == "postgres" {
				// The dns-01 journal: beside the SQLite file by default,
				// /var/lib/certfleet with PostgreSQL; keep it in the test.
				b, _ := os.ReadFile(path)
				if err := os.WriteFile(path, append([]byte("state_dir = \""+dir+"\"\n"), b...), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			code, out, errOut := runCLI(t, "issue", "-config", path)
			if code == 0 || !strings.Contains(errOut, `[dns01.providers.bind] secret = "store:tsig"`) || !strings.Contains(errOut, "certfleet secret set -config "+path+" tsig") {
				t.Fatalf("issue without the stored secret: exit %d, want an error naming the setting and the fix:\n%s%s", code, out, errOut)
			}
			if n.CA.NewOrders() != 0 {
				t.Fatalf("an order was placed without the TSIG secret")
			}

			valueFile := filepath.Join(dir, "tsig.secret")
			if err := os.WriteFile(valueFile, []byte(n.Secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut = runCLI(t, "secret", "set", "-config", path, "-from-file", valueFile, "tsig")
			if code != 0 || !strings.Contains(out, `use it as "store:tsig"`) {
				t.Fatalf("secret set: exit %d\n%s%s", code, out, errOut)
			}
			if err := os.Remove(valueFile); err != nil {
				t.Fatal(err)
			}
			code, out, errOut = runCLI(t, "secret", "list", "-config", path)
			if code != 0 || !strings.Contains(out, "tsig ") || strings.Contains(out, n.Secret) {
				t.Fatalf("secret list: exit %d, want the name and never the value:\n%s%s", code, out, errOut)
			}
			if code, out, errOut = runCLI(t, "check", "-config", path, "-no-http01"); code != 0 {
				t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
			}
			code, out, errOut = runCLI(t, "issue", "-config", path)
			if code != 0 || !strings.Contains(out, "issued   www") {
				t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
			}
			if strings.Contains(out+errOut, n.Secret) {
				t.Error("the TSIG secret appears in the output")
			}
			raw, _ := base64.StdEncoding.DecodeString(n.Secret)
			d := dump()
			if bytes.Contains(d, []byte(n.Secret)) || bytes.Contains(d, raw) {
				t.Fatal("the database dump holds the TSIG secret")
			}
			cfgText, _ := os.ReadFile(path)
			if bytes.Contains(cfgText, []byte(n.Secret)) {
				t.Fatal("the config holds the TSIG secret")
			}

			// Deleted: the next start says so again.
			if code, out, errOut = runCLI(t, "secret", "delete", "-config", path, "tsig"); code != 0 {
				t.Fatalf("secret delete: exit %d\n%s%s", code, out, errOut)
			}
			code, out, errOut = runCLI(t, "audit", "-config", path, "-kind", "secret_changed", "-json")
			if code != 0 || !strings.Contains(out, "secret tsig set (") || !strings.Contains(out, "secret tsig deleted") || !strings.Contains(out, `"actor": "cli:`) || strings.Contains(out, n.Secret) {
				t.Fatalf("audit of secret changes: exit %d\n%s%s", code, out, errOut)
			}
			if code, _, errOut = runCLI(t, "issue", "-config", path); code == 0 || !strings.Contains(errOut, `no secret "tsig" in the store`) {
				t.Fatalf("issue after delete: exit %d\n%s", code, errOut)
			}
		})
	}
}

// TestSecretSetNeedsMasterKey: without a master key the store refuses to
// keep a secret, and says what to set.
func TestSecretSetNeedsMasterKey(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := daemontest.WriteConfig(t, dir, ca, port, "")
	f := filepath.Join(dir, "v")
	if err := os.WriteFile(f, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "secret", "set", "-config", path, "-from-file", f, "x")
	if code == 0 || !strings.Contains(errOut, "master_key_file") || strings.Contains(out+errOut, "hunter2") {
		t.Fatalf("secret set without master key: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "secret", "set", "-config", path, "-from-file", f, "Bad/Name"); code != 2 || !strings.Contains(errOut, "secret name") {
		t.Fatalf("bad name: exit %d\n%s", code, errOut)
	}
}

// TestCommandsDoNotInheritMasterKey: with the master key in
// CERTFLEET_MASTER_KEY, the commands certfleet runs (prepare and cleanup
// hooks, post-issue commands) see every other variable but not that one.
func TestCommandsDoNotInheritMasterKey(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	generateKey(t, key)
	text, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(daemon.MasterKeyEnv, strings.TrimSpace(string(text)))
	t.Setenv("CERTFLEET_TEST_MARKER", "inherited")
	log := filepath.Join(dir, "env.log")
	show := `echo \"%s key=${CERTFLEET_MASTER_KEY:-absent} marker=${CERTFLEET_TEST_MARKER:-absent}\" >> ` + log
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(`prepare = [["sh", "-c", "%s"]]
cleanup = [["sh", "-c", "%s"]]

[[certificate]]
name = "web"
identifiers = ["web.certfleet.test"]
commands = [["sh", "-c", "%s"]]
`, fmt.Sprintf(show, "prepare"), fmt.Sprintf(show, "cleanup"), fmt.Sprintf(show, "deploy")))
	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errOut)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "prepare key=absent marker=inherited\ncleanup key=absent marker=inherited\ndeploy key=absent marker=inherited\n"
	if string(got) != want {
		t.Fatalf("the commands saw:\n%s\nwant:\n%s", got, want)
	}
}

// TestSecretMissingName: a forgotten NAME is reported as such (exit 2),
// not as a flag missing its value because the last flag's value was taken
// for the NAME.
func TestSecretMissingName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "certfleet.toml")
	for _, args := range [][]string{
		{"secret", "set", "-config", path},
		{"secret", "set", "-config", path, "-from-file", filepath.Join(dir, "v")},
		{"secret", "delete", "-config", path},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != 2 || !strings.Contains(errOut, "NAME") || strings.Contains(errOut, "flag needs an argument") {
			t.Errorf("%v: exit %d, want 2 and an error naming the missing NAME:\n%s", args, code, errOut)
		}
	}
}
