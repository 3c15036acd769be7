package daemontest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/hook"
)

// HookSecret is the webhook secret HookSection writes.
const HookSecret = "test-hook-secret-0123456789"

// HookReceiver is a real HTTP server receiving events from a certfleet
// webhook hook as docs/events.md tells receivers to: it verifies each
// request's signature (a bad one is refused with 401 and noted), keeps
// the payloads it accepted, and refuses the first FailFirst signed
// requests with 503.
type HookReceiver struct {
	mu        sync.Mutex // guards failFirst, accepted, bodies, tries, bad
	failFirst int
	accepted  []hook.Payload
	bodies    []string
	tries     int
	bad       []string
	srv       *httptest.Server
}

// NewHookReceiver starts a HookReceiver that refuses the first failFirst
// requests, closed when the test ends.
func NewHookReceiver(t testing.TB, failFirst int) *HookReceiver {
	r := &HookReceiver{failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.tries++
		err := hook.Verify([]byte(HookSecret), req.Header.Get(hook.HeaderTimestamp), req.Header.Get(hook.HeaderSignature), body, time.Now(), 0)
		if err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.failFirst > 0 {
			r.failFirst--
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		var p hook.Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Key != req.Header.Get(hook.HeaderIdempotencyKey) {
			r.bad = append(r.bad, fmt.Sprintf("payload %.200s: %v (or its key is not the Idempotency-Key header)", body, err))
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		r.accepted = append(r.accepted, p)
		r.bodies = append(r.bodies, string(body))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is where the receiver listens.
func (r *HookReceiver) URL() string { return r.srv.URL + "/certfleet" }

// Accepted returns the payloads accepted so far, in arrival order.
func (r *HookReceiver) Accepted() []hook.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted)
}

// Types lists the accepted payloads' types, in arrival order.
func (r *HookReceiver) Types() []string {
	var out []string
	for _, p := range r.Accepted() {
		out = append(out, p.Type)
	}
	return out
}

// Check fails the test unless every request was signed right, no payload
// was accepted twice (by key), at least one request was refused when the
// receiver was told to fail first, and no body held a private key.
func (r *HookReceiver) Check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Errorf("the receiver refused badly signed or malformed requests: %v", r.bad)
	}
	seen := make(map[string]bool)
	for _, p := range r.accepted {
		if seen[p.Key] {
			t.Errorf("event %s (%s) accepted twice", p.Key, p.Type)
		}
		seen[p.Key] = true
	}
	if r.failFirst > 0 {
		t.Errorf("the receiver still had %d refusals to make: the failing-first path was not exercised", r.failFirst)
	}
	for _, b := range r.bodies {
		if strings.Contains(b, "PRIVATE KEY") {
			t.Errorf("a payload holds a private key: %.200s", b)
		}
	}
}

// WebhookHookSection is an [events.hooks.NAME] table of type webhook
// sending to r, with HookSecret in a 0600 file in dir, and extra lines
// appended.
func WebhookHookSection(t testing.TB, dir, name string, r *HookReceiver, extra string) string {
	t.Helper()
	secret := filepath.Join(dir, name+"-secret")
	if err := os.WriteFile(secret, []byte(HookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("\n[events.hooks.%s]\ntype = \"webhook\"\nurl = %q\nsecret_file = %q\n%s", name, r.URL(), secret, extra)
}

// AnsibleVault returns the path of Debian's ansible-vault
// (.ci/install-ansible.sh). Without it the test is skipped, loudly, or
// fails under CI.
func AnsibleVault(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ansible-vault")
	if err != nil {
		msg := "the export's vault files are checked with the real ansible-vault: bash .ci/install-ansible.sh"
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but ansible-vault is missing: %s", msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	return p
}

// VaultView decrypts the Ansible Vault file at path with the real
// ansible-vault and the password in passwordFile, and returns the
// plaintext.
func VaultView(t testing.TB, path, passwordFile string) []byte {
	t.Helper()
	cmd := exec.Command(AnsibleVault(t), "decrypt", "--vault-password-file", passwordFile, "--output", "-", path)
	cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ansible-vault decrypt %s: %v\n%s", path, err, stderr.String())
	}
	return out
}
