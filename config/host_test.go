package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckHost (issue 15, finding 2): an owner or group that does not
// exist, or an output directory below a regular file, passed validation,
// the CA issued, and only then did writing fail. CheckHost finds them
// before any order, each with its line; Load itself still accepts the file
// (it is read on other hosts too).
func TestCheckHost(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := ca + fmt.Sprintf(`[defaults]
owner = "certfleet-no-such-user"

[[certificate]]
name = "a"
identifiers = ["a.example.org"]
output_dir = %q
group = "certfleet-no-such-group"

[[certificate]]
name = "b"
identifiers = ["b.example.org"]
output_dir = %q
owner = "root"
copy = [{ path = %q, content = "combined", owner = "certfleet-no-such-user" }]

[[certificate]]
name = "fine"
identifiers = ["fine.example.org"]
output_dir = %q
owner = "0"
group = "0"
`, filepath.Join(file, "a"), file, filepath.Join(file, "sub", "b.pem"), filepath.Join(dir, "fine"))
	path := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v; want the file accepted (host checks are CheckHost's)", err)
	}
	err = cfg.CheckHost()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("CheckHost = %v, want *Error", err)
	}
	var got []string
	for _, p := range cerr.Problems {
		got = append(got, p.String())
	}
	t.Logf("problems:\n%s", strings.Join(got, "\n"))
	want := []string{
		`certfleet.toml:6: certificate[0].owner: user "certfleet-no-such-user" does not exist on this host`,
		`certfleet.toml:9: certificate[0].output_dir: ` + filepath.Join(file, "a") + ` cannot be created: ` + file + ` is a regular file`,
		`certfleet.toml:10: certificate[0].group: group "certfleet-no-such-group" does not exist`,
		`certfleet.toml:15: certificate[1].output_dir: ` + file + ` is a regular file, not a directory`,
		`certfleet.toml:17: certificate[1].copy: copy ` + filepath.Join(file, "sub", "b.pem") + `: user "certfleet-no-such-user"`,
		`certfleet.toml:17: certificate[1].copy: copy ` + filepath.Join(file, "sub", "b.pem") + `: ` + filepath.Join(file, "sub") + ` cannot be created`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d", len(got), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], path[:len(path)-len("certfleet.toml")]) || !strings.Contains(got[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
		}
	}
	if !strings.Contains(got[0], "comes from [defaults]") {
		t.Errorf("the owner from [defaults] does not say so: %q", got[0])
	}
}
