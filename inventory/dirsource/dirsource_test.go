package dirsource_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/inventory"
	"github.com/certfleet/certfleet/inventory/dirsource"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wheres(es []inventory.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, filepath.Base(e.Where))
	}
	return out
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "web.toml"), "[[certificate]]\nidentifiers = [\"web.example.org\"]\n")
	write(t, filepath.Join(dir, "api.toml"), "")
	write(t, filepath.Join(dir, ".api.toml.swp"), "junk")
	write(t, filepath.Join(dir, "web.toml~"), "junk")
	write(t, filepath.Join(dir, "README"), "junk")
	if err := os.Mkdir(filepath.Join(dir, "sub.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &dirsource.Source{Dir: dir}
	es, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := wheres(es); !slices.Equal(got, []string{"api.toml", "web.toml"}) {
		t.Errorf("files = %v, want api.toml and web.toml only", got)
	}
	if es[0].File == nil || !strings.Contains(string(es[1].File), "web.example.org") {
		t.Errorf("entries = %+v", es)
	}
	// A file that cannot be read fails the whole read.
	if os.Getuid() != 0 { // root reads anything
		write(t, filepath.Join(dir, "locked.toml"), "")
		os.Chmod(filepath.Join(dir, "locked.toml"), 0)
		if _, err := s.Read(t.Context()); err == nil {
			t.Error("an unreadable file did not fail the read")
		}
		os.Remove(filepath.Join(dir, "locked.toml"))
	}
	if _, err := (&dirsource.Source{Dir: filepath.Join(dir, "nope")}).Read(t.Context()); err == nil || !strings.Contains(err.Error(), "create it (it may be empty)") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	changes := make(chan struct{}, 16)
	s := &dirsource.Source{Dir: dir, PollInterval: 20 * time.Millisecond}
	go s.Watch(t.Context(), func() { changes <- struct{}{} })
	wait := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(30 * time.Second):
			t.Fatalf("no change seen for %s", what)
		}
		// A write that is not atomic may be seen half-done, then done:
		// let it settle.
		for {
			select {
			case <-changes:
				continue
			case <-time.After(100 * time.Millisecond):
			}
			break
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("a change was seen after %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	wait("the start")
	write(t, filepath.Join(dir, "web.toml"), "a")
	wait("a new file")
	write(t, filepath.Join(dir, "notes.txt"), "a")
	quiet("a file that is not TOML")
	write(t, filepath.Join(dir, "web.toml"), "ab")
	wait("an edit")
	// An editor's save: a new file renamed over the old one.
	write(t, filepath.Join(dir, ".web.toml.new"), "xy")
	quiet("a hidden file")
	if err := os.Rename(filepath.Join(dir, ".web.toml.new"), filepath.Join(dir, "web.toml")); err != nil {
		t.Fatal(err)
	}
	wait("a rename over the file")
	os.Remove(filepath.Join(dir, "web.toml"))
	wait("a removal")
}
