package agent_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/agent"
)

// TestStateDirCreated0700 is issue 17's finding: the agent created its
// state_dir 0755 (the deploy directories' mode) although docs/agent.md
// says 0700; one an older agent made readable by others is tightened.
func TestStateDirCreated0700(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	s := newServer(t)
	ctx := t.Context()
	if _, err := s.admin.PutName(ctx, "state.agent.test", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "state.agent.test issued", 60*time.Second, func() bool { return s.current("state.agent.test").Fingerprint != "" })
	dir := t.TempDir()
	client := s.client(s.token(certfleet.PermReadKeys))
	for _, tc := range []struct {
		name, stateDir string
		before         func(string)
	}{
		{"created", filepath.Join(dir, "lib", "state"), func(string) {}},
		{"made 0755 before", filepath.Join(dir, "old-state"), func(p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.before(tc.stateDir)
			a, err := agent.New(agent.Config{Name: "host-state", Client: client, StateDir: tc.stateDir,
				Certificates: []agent.Certificate{{Name: "state.agent.test",
					Files: agent.Files{Fullchain: filepath.Join(dir, tc.name, "fullchain.pem"), Key: filepath.Join(dir, tc.name, "privkey.pem")}}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Once(ctx); err != nil {
				t.Fatalf("Once: %v", err)
			}
			st, err := os.Stat(tc.stateDir)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != 0o700 {
				t.Errorf("state_dir mode = %#o, want 0700", got)
			}
		})
	}
}
