package alert_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/sqlite"
)

// archiveReads is the real SQLite store, counting the archive listings
// (Issuances) made through it.
type archiveReads struct {
	*sqlite.Store
	n atomic.Int32
}

func (s *archiveReads) Issuances(ctx context.Context, f certfleet.IssuanceFilter) ([]certfleet.Issuance, error) {
	s.n.Add(1)
	return s.Store.Issuances(ctx, f)
}

// TestArchiveReadOncePerIssuance: an agent that stays on a replaced
// certificate keeps its lineage's archive in play every round (and rounds
// run up to once a second while agents check in); the archive is read from
// the store once per current issuance, not once per round, and read again
// when a new issuance becomes current.
func TestArchiveReadOncePerIssuance(t *testing.T) {
	s := &archiveReads{Store: openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db"))}
	f := newFixture(t, s)
	old, err := s.Issuance(t.Context(), mustJob(t, s, f.key).CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	renewedAt := f.t0.Add(day(60))
	f.issue(t, renewedAt)
	if err := s.PutAgentReport(t.Context(), certfleet.AgentReport{Agent: "lb1", Certificate: "web", KeyType: f.key.KeyType,
		Serial: old.Serial, Fingerprint: old.Fingerprint, NotAfter: old.NotAfter, InstalledAt: f.t0, ReportedAt: f.t0, TokenID: "t"}); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: renewedAt.Add(25 * time.Hour)} // past the grace period (1 day)
	e := &alert.Evaluator{Store: s, Instance: "one", Now: c.Now}
	s.n.Store(0)
	for i := range 5 {
		rep, err := e.Round(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && rep.Opened != 1 {
			t.Fatalf("first round = %+v, want the stale agent's incident opened", rep)
		}
	}
	if got := s.n.Load(); got != 1 {
		t.Errorf("5 rounds with one stale agent read the archive %d times, want once", got)
	}
	f.issue(t, renewedAt.Add(day(1))) // a new current certificate: the archive changed
	if _, err := e.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.n.Load(); got != 2 {
		t.Errorf("after a renewal the archive was read %d times in all, want it read again (2)", got)
	}
}
