package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

// issueElsewhere plays another instance issuing spec's certificate: it
// claims the job and completes it with a certificate of ca.
func issueElsewhere(t *testing.T, s certfleet.Store, ca *testCA, spec certfleet.CertificateSpec) certfleet.Issuance {
	t.Helper()
	key := certfleet.JobKey{Spec: spec.Name, KeyType: certfleet.ECDSAP256}
	for range 100 {
		jobs, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "elsewhere", Now: time.Now(), Lease: time.Minute, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var mine bool
		for _, j := range jobs {
			if j.JobKey == key {
				mine = true
				continue
			}
			_ = s.ReleaseLease(t.Context(), j.JobKey, "elsewhere")
		}
		if mine {
			iss := ca.issue(t, spec, certfleet.ECDSAP256)
			iss.ID, iss.SpecRevision, iss.IssuedAt = 0, spec.Revision(certfleet.ECDSAP256), time.Now()
			stored, err := s.CompleteIssuance(t.Context(), "elsewhere", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}, certfleet.Attempt{Instance: "elsewhere"})
			if err != nil {
				t.Fatal(err)
			}
			return stored
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s never claimable", key)
	return certfleet.Issuance{}
}

func followSpecs() []certfleet.CertificateSpec {
	var out []certfleet.CertificateSpec
	for _, n := range []string{"one", "two", "skipped"} {
		sp := testSpec(certfleet.ECDSAP256)
		sp.Name = n
		sp.Identifiers = []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: n + ".example.org"}}
		sp.Source = certfleet.SourceConfig
		out = append(out, sp)
	}
	return out
}

// runFollower runs a Follower writing into dir (one directory per
// certificate, "skipped" not wanted) until the test ends.
func runFollower(t *testing.T, s deploy.FollowStore, dir string, interval time.Duration, failFirst *atomic.Int32) *deploy.Follower {
	t.Helper()
	specs := map[string]certfleet.CertificateSpec{}
	for _, sp := range followSpecs() {
		specs[sp.Name] = sp
	}
	f := &deploy.Follower{
		Store:    s,
		Interval: interval,
		Wants:    func(name string) bool { return name != "skipped" },
		Deploy: func(ctx context.Context, iss certfleet.Issuance) error {
			if failFirst != nil && failFirst.Add(-1) >= 0 {
				return os.ErrPermission // a disk or an owner that is wrong, once
			}
			_, err := new(deploy.Writer).Write(ctx, deploy.Target{Dir: filepath.Join(dir, iss.Spec)}, specs[iss.Spec], iss)
			return err
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// waitFile waits until path holds want, and returns how long it took.
func waitFile(t *testing.T, path string, want []byte, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got, err := os.ReadFile(path); err == nil && string(got) == string(want) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s not written within %v", path, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFollowerPostgres: issue 16 finding 4. Another instance issues; this
// one, woken by PostgreSQL's NOTIFY (its interval is a minute), writes the
// files within a second, and only for the certificates it has outputs for.
// A write that fails is tried again.
func TestFollowerPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	other, mine := open(), open()
	if _, err := other.SyncSpecs(t.Context(), certfleet.SourceConfig, followSpecs()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var failFirst atomic.Int32
	failFirst.Store(1)
	runFollower(t, mine, dir, time.Minute, &failFirst)
	time.Sleep(100 * time.Millisecond) // listening

	ca := newTestCA(t)
	iss := issueElsewhere(t, other, ca, followSpecs()[0])
	// The first write fails; the retry comes within seconds.
	took := waitFile(t, filepath.Join(dir, "one", "fullchain.pem"), iss.ChainPEM, 10*time.Second)
	t.Logf("written %v after another instance's issuance (one failed write retried)", took.Round(time.Millisecond))

	iss2 := issueElsewhere(t, other, ca, followSpecs()[1])
	took = waitFile(t, filepath.Join(dir, "two", "fullchain.pem"), iss2.ChainPEM, 5*time.Second)
	if took > 2*time.Second {
		t.Errorf("written %v after the issuance: the NOTIFY did not wake the follower", took)
	}
	t.Logf("written %v after another instance's issuance", took.Round(time.Millisecond))
	issueElsewhere(t, other, ca, followSpecs()[2])
	time.Sleep(time.Second)
	if _, err := os.Stat(filepath.Join(dir, "skipped")); !os.IsNotExist(err) {
		t.Errorf("a certificate without outputs here was written: %v", err)
	}
}

// TestFollowerSQLite: without notifications, the interval: a certificate
// issued by another process on the same file is written at the next look.
func TestFollowerSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	open := func() *sqlite.Store {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	other, mine := open(), open()
	if _, err := other.SyncSpecs(t.Context(), certfleet.SourceConfig, followSpecs()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := runFollower(t, mine, dir, 200*time.Millisecond, nil)
	iss := issueElsewhere(t, other, newTestCA(t), followSpecs()[0])
	waitFile(t, filepath.Join(dir, "one", "fullchain.pem"), iss.ChainPEM, 5*time.Second)

	// A pass over everything (start, reload) rewrites what was changed by
	// hand; a pass over what is new leaves it. (Run's pass records the
	// write just after the file appears: wait for that.)
	for i := 0; ; i++ {
		if n, err := f.Pass(t.Context(), false); err == nil && n == 0 {
			break
		} else if i == 20 {
			t.Fatalf("a pass after the write still writes: %d, %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(dir, "one", "fullchain.pem"), []byte("by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Pass(t.Context(), false); err != nil || n != 0 {
		t.Errorf("pass over what is new: %d written, %v; want none", n, err)
	}
	if n, err := f.Pass(t.Context(), true); err != nil || n != 1 {
		t.Errorf("pass over everything: %d written, %v; want 1", n, err)
	}
	waitFile(t, filepath.Join(dir, "one", "fullchain.pem"), iss.ChainPEM, time.Second)
}
