package staging

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRealPath: the longest existing prefix of a path has its symlinks
// resolved and the rest is kept, so a staging root not created yet under a
// symlink into production is seen where it will really be.
func TestRealPath(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	prod := filepath.Join(dir, "prod")
	if err := os.Mkdir(prod, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(prod, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"existing", prod, prod},
		{"through a symlink", filepath.Join(dir, "link"), prod},
		{"missing below a symlink", filepath.Join(dir, "link", "a", "b.pem"), filepath.Join(prod, "a", "b.pem")},
		{"missing below a directory", filepath.Join(dir, "new", "x"), filepath.Join(dir, "new", "x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := realPath(tc.in); got != tc.want {
				t.Errorf("realPath(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}
