package deploy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// followReads is the real SQLite store, recording the rows a pass reads
// in one call (the jobs, or a page of current certificates) and in all.
type followReads struct {
	*sqlite.Store
	mu        sync.Mutex
	most, all int
}

func (s *followReads) count(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.most, s.all = max(s.most, n), s.all+n
}

func (s *followReads) Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error) {
	jobs, err := s.Store.Jobs(ctx, f)
	s.count(len(jobs))
	return jobs, err
}

func (s *followReads) CurrentCertificates(ctx context.Context, f certfleet.CurrentFilter) ([]certfleet.CurrentCertificate, error) {
	page, err := s.Store.CurrentCertificates(ctx, f)
	s.count(len(page))
	return page, err
}

// TestFollowerPassAtScale is issue 13's finding on serve's memory: a
// Follower's pass read every job at once, every 30 seconds and, on
// PostgreSQL, at every change notified (every PUT), though only the
// certificates with outputs here are written. A pass now holds a page of
// current certificates at a time; told which certificates have outputs,
// it reads those alone.
func TestFollowerPassAtScale(t *testing.T) {
	const n = 1500
	ctx := t.Context()
	s := &followReads{Store: mustOpenSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))}
	specs := storetest.NewSpecs("bulk", n)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "fill", Now: time.Now().Add(time.Second), Lease: time.Hour, Limit: n})
	if err != nil || len(jobs) != n {
		t.Fatalf("claimed %d: %v", len(jobs), err)
	}
	byName := map[string]certfleet.CertificateSpec{}
	for _, sp := range specs {
		byName[sp.Name] = sp
	}
	for i, j := range jobs {
		iss := storetest.NewIssuance(byName[j.Spec], j.KeyType)
		iss.Serial, iss.Fingerprint = fmt.Sprintf("%x", 1000+i), fmt.Sprintf("%064x", i)
		if _, err := s.CompleteIssuance(ctx, "fill", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)},
			certfleet.Attempt{JobKey: j.JobKey, Instance: "fill", Outcome: certfleet.OutcomeIssued}); err != nil {
			t.Fatal(err)
		}
	}
	wanted := []string{specs[7].Name, specs[1400].Name}
	var mu sync.Mutex
	var wrote []string
	f := &deploy.Follower{Store: s, Wants: func(name string) bool { return slices.Contains(wanted, name) },
		Deploy: func(_ context.Context, iss certfleet.Issuance) error {
			mu.Lock()
			defer mu.Unlock()
			wrote = append(wrote, iss.Spec)
			return nil
		}}
	pass := func() {
		t.Helper()
		s.most, s.all, wrote = 0, 0, nil
		if got, err := f.Pass(ctx, true); err != nil || got != len(wanted) {
			t.Fatalf("Pass = %d, %v; want %d", got, err, len(wanted))
		}
		slices.Sort(wrote)
		if !slices.Equal(wrote, wanted) {
			t.Fatalf("wrote %v, want %v", wrote, wanted)
		}
	}

	pass()
	if s.most > 1000 || s.all != n {
		t.Errorf("a pass read %d rows at once, %d in all; want a page (1,000) at most, %d in all", s.most, s.all, n)
	}

	f.Certificates = func() []string { return wanted }
	pass()
	if s.all != len(wanted) {
		t.Errorf("a pass told the certificates with outputs read %d rows; want theirs alone (%d)", s.all, len(wanted))
	}
}

func mustOpenSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
