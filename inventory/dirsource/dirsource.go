// Package dirsource is the inventory source of a directory of TOML files
// (conf.d), each owned by a team and listing its certificates as
// [[certificate]] tables. It reads the files whose names end in ".toml"
// (hidden files, editors' backups and subdirectories are left alone) and
// watches them by comparing their sizes and modification times every
// PollInterval.
//
// It does not decode the files: package inventory does, with the config
// file's own rules, so that a mistake in one file is reported with its
// line and skips only that certificate. Polling rather than inotify keeps
// it dependency-free and correct on network file systems and with editors
// that replace files by renaming; a stat per file every two seconds costs
// nothing a conf.d directory would notice.
package dirsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/inventory"
)

// DefaultPollInterval is PollInterval's default.
const DefaultPollInterval = 2 * time.Second

// Source reads a conf.d directory. Set the fields before first use.
type Source struct {
	// Dir is the directory. Required.
	Dir string
	// PollInterval is how often Watch compares the files' sizes and
	// modification times. Default DefaultPollInterval.
	PollInterval time.Duration
}

var (
	_ inventory.Source  = (*Source)(nil)
	_ inventory.Watcher = (*Source)(nil)
)

// files lists the directory's TOML files, sorted.
func (s *Source) files() ([]os.DirEntry, error) {
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w; create it (it may be empty) or correct the source's dir", s.Dir, err)
	}
	out := des[:0]
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".toml") {
			continue
		}
		if de.IsDir() {
			continue
		}
		out = append(out, de)
	}
	return out, nil
}

// Read implements inventory.Source: one Entry per TOML file. A file that
// cannot be read fails the whole read (a missing file would otherwise
// look like a team's certificates withdrawn).
func (s *Source) Read(ctx context.Context) ([]inventory.Entry, error) {
	des, err := s.files()
	if err != nil {
		return nil, err
	}
	entries := make([]inventory.Entry, 0, len(des))
	for _, de := range des {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(s.Dir, de.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w; make it readable by certfleet (or move it out of %s)", path, err, s.Dir)
		}
		if data == nil {
			data = []byte{}
		}
		entries = append(entries, inventory.Entry{Where: path, File: data})
	}
	return entries, nil
}

// Watch implements inventory.Watcher: it calls changed when a file is
// added, removed, or changes size or modification time, and when the
// directory becomes readable or unreadable (Read reports why). It returns
// only when ctx ends.
func (s *Source) Watch(ctx context.Context, changed func()) error {
	every := s.PollInterval
	if every <= 0 {
		every = DefaultPollInterval
	}
	last := s.fingerprint()
	changed()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if fp := s.fingerprint(); !slices.Equal(fp, last) {
			last = fp
			changed()
		}
	}
}

// fingerprint is what Watch compares: each file's name, size and
// modification time, or the error that kept it from listing them.
func (s *Source) fingerprint() []string {
	des, err := s.files()
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	fp := make([]string, 0, len(des))
	for _, de := range des {
		fi, err := os.Stat(filepath.Join(s.Dir, de.Name())) // follows symlinks, as Read does
		if err != nil {
			fp = append(fp, de.Name()+" error: "+err.Error())
			continue
		}
		fp = append(fp, fmt.Sprintf("%s %d %d", de.Name(), fi.Size(), fi.ModTime().UnixNano()))
	}
	return fp
}
