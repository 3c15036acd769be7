package alert_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/sqlite"
)

// roundReads is the real SQLite store, recording what a round reads
// through it: every job, single issuances, and pages of current
// certificates.
type roundReads struct {
	*sqlite.Store
	mu        sync.Mutex
	jobs      int   // Jobs calls, but for the jobs not written
	issuances int   // Issuance calls
	pages     []int // the Limit of each CurrentCertificates call
}

func (s *roundReads) Jobs(ctx context.Context, f certfleet.JobFilter) ([]certfleet.Job, error) {
	if !f.NotWritten { // the jobs not written are few, and indexed (not_written incidents)
		s.mu.Lock()
		s.jobs++
		s.mu.Unlock()
	}
	return s.Store.Jobs(ctx, f)
}

func (s *roundReads) Issuance(ctx context.Context, id int64) (certfleet.Issuance, error) {
	s.mu.Lock()
	s.issuances++
	s.mu.Unlock()
	return s.Store.Issuance(ctx, id)
}

func (s *roundReads) CurrentCertificates(ctx context.Context, f certfleet.CurrentFilter) ([]certfleet.CurrentCertificate, error) {
	s.mu.Lock()
	s.pages = append(s.pages, f.Limit)
	s.mu.Unlock()
	return s.Store.CurrentCertificates(ctx, f)
}

// TestRoundReadsPages is issue 13's memory finding for alerts: a round
// loaded every job and every current issuance (each read whole, chain and
// key included, on the first round) and kept them all, so serve's memory
// grew with the number of names at every round. Now it reads the current
// certificates a page at a time (no job list, no issuance read one by
// one) and still finds the expiring certificates whose renewal fails.
func TestRoundReadsPages(t *testing.T) {
	const n, every = 1500, 100
	s := &roundReads{Store: openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))}
	t0 := fillFailing(t, s, n, every)
	s.jobs, s.issuances, s.pages = 0, 0, nil
	clk := &clock{now: t0.Add(80 * 24 * time.Hour)}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: clk.Now}
	for i := range 2 {
		rep, err := e.Evaluate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := n / every; i == 0 && rep.Opened != want || i == 1 && rep.Updated != want {
			t.Fatalf("round %d = %+v; want the %d failing renewals near expiry", i, rep, want)
		}
	}
	if s.jobs != 0 || s.issuances != 0 {
		t.Errorf("two rounds listed every job %d times and read %d issuances one by one; want neither", s.jobs, s.issuances)
	}
	if len(s.pages) != 4 {
		t.Errorf("two rounds read %d pages of current certificates (%v); want 2 each of %d certificates", len(s.pages), s.pages, n)
	}
	for _, l := range s.pages {
		if l <= 0 || l > 1000 {
			t.Errorf("a page of %d certificates (0: all); want at most 1,000", l)
		}
	}
}
