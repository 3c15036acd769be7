package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// newStagingCA starts a second Pebble, the "staging CA", validating http-01
// on the same port as the production one (the responder is the same).
func newStagingCA(t *testing.T, dir string, port int) (ca *pebbleca.CA, table string) {
	t.Helper()
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port})
	if err != nil {
		t.Fatalf("start staging pebble: %v", err)
	}
	t.Cleanup(func() { ca.Close() })
	roots := filepath.Join(dir, "staging-ca.pem")
	if err := os.WriteFile(roots, ca.TLSRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca, fmt.Sprintf("\n[staging]\ndirectory = %q\ntrusted_roots = %q\n", ca.DirectoryURL(), roots)
}

const stagingCert = `
[[certificate]]
name = "www"
identifiers = ["www.certfleet.test"]
commands = [["sh", "-c", "echo ran >> %s"]]
copy = [{ path = "haproxy/www.pem", content = "combined" }]
`

// TestStagingRunWritesOnlyUnderStagingRoot is issue #4 §5: a test-mode run
// orders from the staging CA only, writes under the staging root only, uses
// its own state file, and prints (does not run) the commands.
func TestStagingRunWritesOnlyUnderStagingRoot(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	stagingCA, stagingTable := newStagingCA(t, dir, port)
	hook := filepath.Join(dir, "hook.log")
	prepare := fmt.Sprintf("prepare = [[\"sh\", \"-c\", \"echo prepared >> %s\"]]\n", hook)
	global := fmt.Sprintf("[deploy]\ncommands = [[\"sh\", \"-c\", \"echo global >> %s\"]]\n", hook)
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(stagingCert, hook)+prepare+global+stagingTable)

	code, out, errOut := runCLI(t, "issue", "--staging", "-config", path)
	if code != 0 {
		t.Fatalf("issue --staging exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"1 issued", `test mode: not running for www: ["sh", "-c",`,
		`test mode: not running for www (prepare): ["sh"`, `test mode: not running for [deploy] (www): ["sh"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := ca.NewOrders(); n != 0 {
		t.Errorf("the production CA got %d orders in test mode", n)
	}
	if n := stagingCA.NewOrders(); n != 1 {
		t.Errorf("the staging CA got %d orders, want 1", n)
	}
	for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "live", "staging", "www", f)); err != nil {
			t.Errorf("staging output missing: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "live", "www")); !os.IsNotExist(err) {
		t.Errorf("test mode touched the production output directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "haproxy")); !os.IsNotExist(err) {
		t.Errorf("test mode touched the production copy path: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "live", "staging", dir, "haproxy", "www.pem")); err != nil {
		t.Errorf("the staging copy is missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); !os.IsNotExist(err) {
		t.Errorf("test mode touched the production store: %v", err)
	}
	if _, issued := countPending(t, filepath.Join(dir, "state-staging.db")); issued != 1 {
		t.Errorf("staging store holds %d issuances, want 1", issued)
	}
	if _, err := os.Stat(hook); !os.IsNotExist(err) {
		t.Errorf("test mode ran a command without run_commands = true: %v", err)
	}
}

// TestStagingCannotTouchProduction is issue #4 §5's guarantee: after a
// production run, a test-mode run leaves production's files and store
// byte-identical and uses other keys; and a test mode configured to write
// into production's outputs, or to use production's store, is refused
// before anything runs.
func TestStagingCannotTouchProduction(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	stagingCA, stagingTable := newStagingCA(t, dir, port)
	hook := filepath.Join(dir, "hook.log")
	certs := fmt.Sprintf(stagingCert, hook)
	path := daemontest.WriteConfig(t, dir, ca, port, certs+stagingTable)

	if code, out, errOut := runCLI(t, "issue", "-config", path); code != 0 {
		t.Fatalf("production issue exit %d\n%s\n%s", code, out, errOut)
	}
	prodDir := filepath.Join(dir, "live", "www")
	snapshot := func() map[string][]byte {
		m := make(map[string][]byte)
		for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"} {
			b, err := os.ReadFile(filepath.Join(prodDir, f))
			if err != nil {
				t.Fatal(err)
			}
			m[f] = b
		}
		b, err := os.ReadFile(filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		m["state.db"] = b
		if m["copy"], err = os.ReadFile(filepath.Join(dir, "haproxy", "www.pem")); err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := snapshot()

	if err := os.Symlink(filepath.Join(dir, "live"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	// Misconfigured: outputs re-rooted onto production's, or production's store.
	for _, tc := range []struct{ table, want string }{
		{stagingTable + "output_root = \"live\"\n", "overlaps the production output"},
		{stagingTable + "output_root = \"" + prodDir + "/sub\"\n", "overlaps the production output"},
		{stagingTable + "state = \"state.db\"\n", "is the production store"},
		{stagingTable + "output_root = \"/\"\n", "overlaps the production output " + filepath.Join(dir, "haproxy", "www.pem")},
		// A symlink from the staging root into production's tree.
		{stagingTable + "output_root = \"link\"\n", "overlaps the production output"},
	} {
		bad := daemontest.WriteConfig(t, dir, ca, port, certs+tc.table)
		code, out, errOut := runCLI(t, "issue", "--staging", "-config", bad)
		if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "test mode refused") {
			t.Errorf("misconfigured test mode %q: exit %d, want 2 with %q\n%s\n%s", tc.table, code, tc.want, out, errOut)
		}
	}
	if n := stagingCA.NewOrders(); n != 0 {
		t.Fatalf("a refused test mode placed %d orders", n)
	}

	path = daemontest.WriteConfig(t, dir, ca, port, certs+stagingTable)
	if code, out, errOut := runCLI(t, "issue", "--staging", "-config", path); code != 0 {
		t.Fatalf("issue --staging exit %d\n%s\n%s", code, out, errOut)
	}
	after := snapshot()
	for f, b := range before {
		if !bytes.Equal(b, after[f]) {
			t.Errorf("test mode changed production's %s", f)
		}
	}
	stagingKey, err := os.ReadFile(filepath.Join(dir, "live", "staging", "www", "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(stagingKey, before["privkey.pem"]) {
		t.Error("test mode reused the production key")
	}
	if n := ca.NewOrders(); n != 1 {
		t.Errorf("production CA got %d orders, want 1 (the production run's)", n)
	}
}

// TestServeStaging runs the daemon in test mode until the staging
// certificate is written, and checks production's CA and store are untouched.
func TestServeStaging(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	stagingCA, stagingTable := newStagingCA(t, dir, port)
	path := daemontest.WriteConfig(t, dir, ca, port, fmt.Sprintf(stagingCert, filepath.Join(dir, "hook.log"))+stagingTable)
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"serve", "--staging", "-config", path}, &out, &errb) }()
	want := filepath.Join(dir, "live", "staging", "www", "fullchain.pem")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(want); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("serve --staging wrote no %s\n%s", want, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve --staging exit %d\n%s", code, errb.String())
	}
	if ca.NewOrders() != 0 || stagingCA.NewOrders() != 1 {
		t.Errorf("orders: production %d (want 0), staging %d (want 1)", ca.NewOrders(), stagingCA.NewOrders())
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); !os.IsNotExist(err) {
		t.Errorf("serve --staging touched the production store: %v", err)
	}
}

// TestStagingRunCommands: with run_commands = true, test mode runs the
// commands, and they see the staging paths.
func TestStagingRunCommands(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	_, stagingTable := newStagingCA(t, dir, port)
	hook := filepath.Join(dir, "hook.log")
	cert := fmt.Sprintf(`
[[certificate]]
name = "www"
identifiers = ["www.certfleet.test"]
commands = [["sh", "-c", "echo \"$CERTFLEET_FULLCHAIN_PATH\" >> %s"]]
`, hook)
	path := daemontest.WriteConfig(t, dir, ca, port, cert+stagingTable+"run_commands = true\n")
	if code, out, errOut := runCLI(t, "issue", "--staging", "-config", path); code != 0 || strings.Contains(out, "not running") {
		t.Fatalf("issue --staging exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(hook)
	if want := filepath.Join(dir, "live", "staging", "www", "fullchain.pem") + "\n"; err != nil || string(b) != want {
		t.Fatalf("command logged %q (%v), want %q", b, err, want)
	}
}
