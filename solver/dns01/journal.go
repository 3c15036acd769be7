package dns01

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// journal keeps the records presented and not yet cleaned up in a JSON
// file, so that a crash between Present and CleanUp does not leave TXT
// records behind for good: CleanupJournal removes them at the next start.
// The file holds record names and values, which are public in DNS anyway;
// no credentials.
type journal struct {
	path string

	mu   sync.Mutex // guards the file
	once sync.Once
}

type journalEntry struct {
	Provider string `json:"provider"`
	Domain   string `json:"domain"`
	FQDN     string `json:"fqdn"`
	Zone     string `json:"zone"`
	Value    string `json:"value"`
	// KeyAuthorization lets a provider that needs it (package lego) remove
	// the record after a restart; not a credential (see Record).
	KeyAuthorization string `json:"key_authorization,omitempty"`
}

func (j *journal) load() (map[string]journalEntry, error) {
	data, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]journalEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dns-01 journal: %w", err)
	}
	m := map[string]journalEntry{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read dns-01 journal %s: %w (delete it after removing leftover _acme-challenge records by hand)", j.path, err)
	}
	return m, nil
}

// save writes the journal atomically: temporary file, fsync, rename.
func (j *journal) save(m map[string]journalEntry) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(j.path)
	f, err := os.CreateTemp(dir, ".dns01-journal-*")
	if err != nil {
		return fmt.Errorf("write dns-01 journal: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write dns-01 journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write dns-01 journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write dns-01 journal: %w", err)
	}
	if err := os.Rename(f.Name(), j.path); err != nil {
		return fmt.Errorf("write dns-01 journal: %w", err)
	}
	return nil
}

func (j *journal) add(key, provider string, rec Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return err
	}
	m[key] = journalEntry{Provider: provider, Domain: rec.Domain, FQDN: rec.FQDN, Zone: rec.Zone, Value: rec.Value, KeyAuthorization: rec.KeyAuthorization}
	return j.save(m)
}

func (j *journal) remove(key string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m, err := j.load()
	if err != nil {
		return err
	}
	if _, ok := m[key]; !ok {
		return nil
	}
	delete(m, key)
	return j.save(m)
}

// CleanupJournal removes every record the journal lists that this process
// has not presented: leftovers of a process that crashed or was killed
// between Present and CleanUp. Present calls it once on first use; call it
// at start-up to clean up sooner. Records whose removal fails stay listed
// and are retried next time.
func (s *Solver) CleanupJournal(ctx context.Context) error {
	s.init()
	if s.jr == nil {
		return nil
	}
	s.jr.mu.Lock()
	m, err := s.jr.load()
	s.jr.mu.Unlock()
	if err != nil {
		return err
	}
	var errs []error
	for key, e := range m {
		s.mu.Lock()
		_, live := s.presented[key]
		s.mu.Unlock()
		if live {
			continue
		}
		rec := Record{Domain: e.Domain, FQDN: e.FQDN, Zone: e.Zone, Value: e.Value, KeyAuthorization: e.KeyAuthorization}
		if err := s.cleanup(ctx, e.Provider, rec); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Logger.Info("removed a dns-01 record left behind by an earlier run", "record", e.FQDN, "zone", e.Zone, "provider", e.Provider)
		if err := s.jr.remove(key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Solver) cleanupJournalOnce(ctx context.Context) {
	if s.jr == nil {
		return
	}
	s.jr.once.Do(func() {
		if err := s.CleanupJournal(ctx); err != nil {
			s.Logger.Warn("could not remove dns-01 records left behind by an earlier run", "error", err)
		}
	})
}
