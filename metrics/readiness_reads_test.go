package metrics_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// currentReads is the real SQLite store, counting the current certificates
// read through it.
type currentReads struct {
	*sqlite.Store
	rows atomic.Int64
}

func (s *currentReads) CurrentCertificates(ctx context.Context, f certfleet.CurrentFilter) ([]certfleet.CurrentCertificate, error) {
	got, err := s.Store.CurrentCertificates(ctx, f)
	s.rows.Add(int64(len(got)))
	return got, err
}

// TestReadinessReadsOnlyWhatItChecks is issue 13's memory finding for the
// readiness watcher, which the daemon runs on an interval: each check read
// every current certificate into memory, though readiness looks only at
// the certificates agents report on and endpoints serve. With none of
// those it reads none; with an agent's report it still finds that agent's
// slow check-ins.
func TestReadinessReadsOnlyWhatItChecks(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &currentReads{Store: st}
	specs := storetest.NewSpecs("r", 3)
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "t", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	byName := map[string]certfleet.CertificateSpec{}
	for _, sp := range specs {
		byName[sp.Name] = sp
	}
	now := time.Now()
	var first certfleet.Issuance
	for i, j := range jobs {
		iss := storetest.NewIssuance(byName[j.Spec], j.KeyType)
		iss.NotBefore, iss.NotAfter, iss.IssuedAt = now.Add(-time.Hour), now.Add(9*time.Hour), now.Add(-time.Hour) // 10 h: a tenth is 1 h
		stored, err := s.CompleteIssuance(ctx, "t", iss, certfleet.ScheduleUpdate{NextAt: now.Add(5 * time.Hour)}, certfleet.Attempt{Instance: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = stored
		}
	}
	m := metrics.New(metrics.Options{Store: s, Fleet: s})
	if vs, err := m.CheckReadiness(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("CheckReadiness = %v, %v; want no violation", vs, err)
	}
	if n := s.rows.Load(); n != 0 {
		t.Errorf("with no agent and no endpoint, a readiness check read %d current certificates; want none", n)
	}
	// An agent that has not installed the current certificate an hour
	// and a half after its issue: a deploy violation, for that lineage.
	if err := s.PutAgentReport(ctx, certfleet.AgentReport{Agent: "lb1", Certificate: first.Spec, KeyType: first.KeyType,
		Serial: "01", Fingerprint: "old", ReportedAt: now}); err != nil {
		t.Fatal(err)
	}
	vs, err := m.CheckReadiness(ctx)
	if err != nil || len(vs) != 1 || vs[0].Certificate != first.Spec || vs[0].Source != certfleet.ReadinessDeploy {
		t.Fatalf("CheckReadiness with lb1 behind = %+v, %v; want its deploy violation on %s", vs, err, first.Spec)
	}
}
