package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestRemoveStaleTemp is issue 16's sixth finding: kill -9 between an
// atomic write's temporary file and its rename left .privkey.pem.tmp-*
// behind for good. Only certfleet's own pattern beside the files it
// writes, older than the process, is removed.
func TestRemoveStaleTemp(t *testing.T) {
	dir := t.TempDir()
	spec := certfleet.CertificateSpec{Name: "web", KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256}}
	// Leftovers as os.CreateTemp names them, from writeFile's pattern.
	var leftovers []string
	for _, name := range []string{KeyFile, FullchainFile, stateFile} {
		f, err := os.CreateTemp(dir, "."+name+".tmp-*")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("partial")
		f.Close()
		leftovers = append(leftovers, f.Name())
	}
	keep := []string{
		filepath.Join(dir, KeyFile),                    // the file itself
		filepath.Join(dir, ".privkey.pem.tmp-12ab"),    // not CreateTemp's digits
		filepath.Join(dir, ".other.pem.tmp-123"),       // not a file certfleet writes here
		filepath.Join(dir, "privkey.pem.tmp-123"),      // no leading dot
		filepath.Join(dir, ".privkey.pem.tmp-"),        // no digits
		filepath.Join(dir, ".certfleet-export-123456"), // another writer's
	}
	for _, p := range keep {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory with the pattern's name is not a file.
	if err := os.Mkdir(filepath.Join(dir, ".cert.pem.tmp-99"), 0o700); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, filepath.Join(dir, ".cert.pem.tmp-99"))
	// A write in progress in another process (modified after we started).
	started := time.Now().Add(-time.Second)
	fresh, err := os.CreateTemp(dir, "."+CertFile+".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	fresh.Close()
	keep = append(keep, fresh.Name())
	for _, p := range leftovers {
		old := started.Add(-time.Minute)
		os.Chtimes(p, old, old)
	}

	removed, err := RemoveStaleTemp(append(TargetFiles(dir, spec), filepath.Join(t.TempDir(), "gone", "x.pem")), started)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	slices.Sort(leftovers)
	if !slices.Equal(removed, leftovers) {
		t.Errorf("removed %q, want %q", removed, leftovers)
	}
	for _, p := range leftovers {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there", p)
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
