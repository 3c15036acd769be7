package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// TargetFiles returns the paths Write writes for spec in dir: the four PEM
// files and the deploy state file of each key type's directory.
func TargetFiles(dir string, spec certfleet.CertificateSpec) []string {
	var out []string
	for _, kt := range spec.KeyTypes {
		d := KeyTypeDir(dir, spec, kt)
		for _, name := range []string{KeyFile, CertFile, ChainFile, FullchainFile, stateFile} {
			out = append(out, filepath.Join(d, name))
		}
	}
	return out
}

// RemoveStaleTemp removes the temporary files certfleet's atomic writes
// (Write, WriteFileAtomic) leave when the process is killed between
// creating one and renaming it over its target (issue 16: kill -9 left
// .privkey.pem.tmp-* behind). For each path in paths it removes, in that
// path's directory only, the regular files named ".NAME.tmp-DIGITS"
// (NAME the path's base name, DIGITS what os.CreateTemp puts there) that
// were last modified before before: pass the process's start time, so a
// write another process has in progress right now is never touched.
// Nothing else is removed, whatever its name. It returns the files it
// removed; a directory that does not exist is skipped; the error joins
// every failure.
func RemoveStaleTemp(paths []string, before time.Time) ([]string, error) {
	var removed []string
	var errs []error
	seen := make(map[string]bool)
	for _, p := range paths {
		dir, name := filepath.Split(filepath.Clean(p))
		if name == "" || seen[p] {
			continue
		}
		seen[p] = true
		prefix := "." + name + ".tmp-"
		matches, err := filepath.Glob(filepath.Join(dir, globEscape(prefix)+"*"))
		if err != nil {
			errs = append(errs, fmt.Errorf("look for leftover temporary files of %s: %w", p, err))
			continue
		}
		for _, m := range matches {
			if !isDigits(strings.TrimPrefix(filepath.Base(m), prefix)) {
				continue
			}
			st, err := os.Lstat(m)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				errs = append(errs, err)
				continue
			}
			if !st.Mode().IsRegular() || !st.ModTime().Before(before) {
				continue
			}
			if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove leftover temporary file: %w", err))
				continue
			}
			removed = append(removed, m)
		}
	}
	return removed, errors.Join(errs...)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// globEscape quotes the characters filepath.Glob treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
