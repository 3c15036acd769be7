package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileAtomic: a new file is written with its mode (whatever the
// umask), the same content again is not rewritten, a new content or mode
// is, and no temporary file is left behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "key.pem")
	w, err := WriteFileAtomic(path, []byte("one"), 0o640, "", "")
	if err != nil || !w {
		t.Fatalf("first write = %v, %v; want written", w, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", st.Mode().Perm())
	}
	if w, err := WriteFileAtomic(path, []byte("one"), 0o640, "", ""); err != nil || w {
		t.Fatalf("same content = %v, %v; want not written", w, err)
	}
	if w, err := WriteFileAtomic(path, []byte("one"), 0o600, "", ""); err != nil || !w {
		t.Fatalf("new mode = %v, %v; want written", w, err)
	}
	if w, err := WriteFileAtomic(path, []byte("two"), 0o600, "", ""); err != nil || !w {
		t.Fatalf("new content = %v, %v; want written", w, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Fatalf("content %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1 (no temporary files)", len(ents))
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFileAtomic(dir+"/", []byte("x"), 0o600, "", ""); err == nil {
		t.Fatal("a directory path was accepted")
	}
}
