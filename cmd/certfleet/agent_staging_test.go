package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/internal/daemontest"
)

// TestAgentStagingRehearsal is issue #4 §5, agents in test mode: a server
// in test mode serves the API on [staging] api_listen from the staging
// store, with a token made by token create --staging; an agent run with
// --staging syncs from it into its staging output root only, prints its
// commands, keeps its state apart, and leaves the production files of the
// same agent config byte-identical.
func TestAgentStagingRehearsal(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	stagingCA, stagingTable := newStagingCA(t, dir, port)
	prodAPI, stagingAPI := fmt.Sprintf("127.0.0.1:%d", daemontest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", daemontest.FreePort(t))
	cert := "[[certificate]]\nname = \"www\"\nidentifiers = [\"www.certfleet.test\"]\n"
	path := daemontest.WriteConfig(t, dir, ca, port, cert+fmt.Sprintf("[api]\nlisten = %q\n", prodAPI)+stagingTable+fmt.Sprintf("api_listen = %q\n", stagingAPI))

	if code, out, errOut := runCLI(t, "issue", "--staging", "-config", path); code != 0 {
		t.Fatalf("issue --staging exit %d\n%s\n%s", code, out, errOut)
	}
	if n := stagingCA.NewOrders(); n != 1 {
		t.Fatalf("the staging CA got %d orders, want 1", n)
	}
	code, secret, errOut := runCLI(t, "token", "create", "--staging", "-config", path, "-names", "*", "-permissions", "read-certs,read-keys", "-description", "rehearsal")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "cft_") {
		t.Fatalf("token create --staging: exit %d %s", code, errOut)
	}
	if code, list, _ := runCLI(t, "token", "list", "-config", path); code != 0 || strings.Contains(list, "rehearsal") {
		t.Errorf("the staging token is in the production store (exit %d):\n%s", code, list)
	}
	if code, list, _ := runCLI(t, "token", "list", "--staging", "-config", path); code != 0 || !strings.Contains(list, "rehearsal") {
		t.Errorf("token list --staging lacks the staging token (exit %d):\n%s", code, list)
	}

	// The test-mode daemon serves the API on api_listen, not on [api] listen.
	d, err := openStagingFor(io.Discard)(t.Context(), path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr, urlAddr, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil || addr != stagingAPI || urlAddr != "" {
		t.Fatalf("StartAPI in test mode: %q %q %v; want %s only", addr, urlAddr, err, stagingAPI)
	}

	// The agent's production files exist (from production) and must not
	// change.
	prodDir := filepath.Join(dir, "prod")
	prodFiles := map[string][]byte{
		filepath.Join(prodDir, "www", "fullchain.pem"): []byte("production fullchain\n"),
		filepath.Join(prodDir, "www", "privkey.pem"):   []byte("production key\n"),
		filepath.Join(prodDir, "haproxy.pem"):          []byte("production combined\n"),
	}
	for p, b := range prodFiles {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	prodToken := writeFile("prod.token", "cft_notvalidanywhere\n")
	stagingToken := writeFile("staging.token", secret+"\n")
	ran := filepath.Join(dir, "ran.log")
	root := filepath.Join(dir, "rehearsal")
	agentConfig := func(stagingServer, outputRoot string) string {
		return writeFile("agent.toml", fmt.Sprintf(`server = "http://%s"
token_file = %q
state_dir = %q
[[certificate]]
name = "www.certfleet.test"
fullchain = %q
privkey = %q
commands = [["sh", "-c", "echo ran >> %s"]]
combined = %q
[staging]
server = %q
token_file = %q
output_root = %q
`, prodAPI, prodToken, filepath.Join(dir, "agent-state"), filepath.Join(prodDir, "www", "fullchain.pem"), filepath.Join(prodDir, "www", "privkey.pem"),
			ran, filepath.Join(prodDir, "haproxy.pem"), stagingServer, stagingToken, outputRoot))
	}
	agentPath := agentConfig("http://"+stagingAPI, root)
	code, out, errOut := runCLI(t, "agent", "--staging", "--once", "-config", agentPath)
	if code != 0 {
		t.Fatalf("agent --staging --once: exit %d\n%s\n%s", code, out, errOut)
	}
	if want := `test mode: not running for www.certfleet.test: ["sh", "-c", "echo ran >> `; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if _, err := os.Stat(ran); !os.IsNotExist(err) {
		t.Errorf("test mode ran the agent's command: %v", err)
	}
	for p, want := range prodFiles {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("production file %s changed (%d bytes now; contents not shown, they may hold a key): %v", p, len(got), err)
		}
		staged, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("staging file missing: %v", err)
			continue
		}
		wantPEM := "CERTIFICATE"
		if strings.HasSuffix(p, "privkey.pem") {
			wantPEM = "PRIVATE KEY"
		}
		if !strings.Contains(string(staged), "-----BEGIN "+wantPEM) {
			t.Errorf("staging file for %s holds no %s (%d bytes)", p, wantPEM, len(staged))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "agent-state")); !os.IsNotExist(err) {
		t.Errorf("test mode used the production state_dir: %v", err)
	}
	if n := ca.NewOrders(); n != 0 {
		t.Errorf("the production CA got %d orders", n)
	}

	// The guard: an output root that re-roots onto production paths, and
	// the production server as the staging one, are refused before any I/O.
	for _, tc := range []struct{ server, root, want string }{
		{"http://" + stagingAPI, "/", "overlaps the production output"},
		{"http://" + prodAPI, root, "is the production server"},
	} {
		code, out, errOut := runCLI(t, "agent", "--staging", "--once", "-config", agentConfig(tc.server, tc.root))
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("server %s, output_root %s: exit %d, want 2 and %q\n%s\n%s", tc.server, tc.root, code, tc.want, out, errOut)
		}
	}
	for p, want := range prodFiles {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("production file %s changed by a refused run (%d bytes now): %v", p, len(got), err)
		}
	}
}

// TestStagingAPIListenGuard: [staging] api_listen may not be a production
// API listener.
func TestStagingAPIListenGuard(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	_, stagingTable := newStagingCA(t, dir, port)
	cert := "[[certificate]]\nname = \"www\"\nidentifiers = [\"www.certfleet.test\"]\n"
	for _, key := range []string{"listen", "url_listen"} {
		path := daemontest.WriteConfig(t, dir, ca, port, cert+"[api]\n"+key+" = \"127.0.0.1:8555\"\n"+stagingTable+"api_listen = \"127.0.0.1:8555\"\n")
		code, out, errOut := runCLI(t, "issue", "--staging", "-config", path)
		if code != 2 || !strings.Contains(errOut, "is a production API listener") {
			t.Errorf("[api] %s = [staging] api_listen: exit %d, want 2\n%s\n%s", key, code, out, errOut)
		}
	}
}
