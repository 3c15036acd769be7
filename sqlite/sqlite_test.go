package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
	"github.com/certfleet/certfleet/storetest"
)

// newTestStore opens a store on a new file in t's temp dir, closed when t ends.
func newTestStore(t testing.TB) *sqlite.Store {
	t.Helper()
	return mustOpen(t, filepath.Join(t.TempDir(), "certfleet.db"))
}

func mustOpen(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}

// rawDB opens the store's file directly, for checks below the interface.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestReopen runs storetest.RunReopen on one file, then checks that the
// file records each migration once.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	storetest.RunReopen(t, func(t *testing.T) certfleet.Store { return mustOpen(t, path) })
	var n, max int
	if err := rawDB(t, path).QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if n != len(files) || n == 0 {
		t.Errorf("schema_migrations: %d rows up to version %d, want one per migration file (%d)", n, max, len(files))
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s := mustOpen(t, path)
	s.Close()
	if _, err := rawDB(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(t.Context(), path)
	if err == nil {
		t.Fatal("Open of a database from a newer version succeeded")
	}
	if got := certfleet.ErrorCode(err); got != certfleet.EINVALID {
		t.Errorf("error %v: code %q, want %q", err, got, certfleet.EINVALID)
	}
	if msg := certfleet.ErrorMessage(err); !strings.Contains(msg, "9999") {
		t.Errorf("message %q does not name the database's version", msg)
	}
}

func TestOpenInvalid(t *testing.T) {
	for _, path := range []string{"", ":memory:", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		} else if got := certfleet.ErrorCode(err); got != certfleet.EINVALID {
			t.Errorf("Open(%q): code %q, want %q", path, got, certfleet.EINVALID)
		}
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	mustOpen(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		t.Errorf("database file mode %v: readable by others, but it holds private keys", mode)
	}
}

// TestClock checks that new jobs and RetryNow take the time from Store.Now.
func TestClock(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := sqlite.New(filepath.Join(t.TempDir(), "certfleet.db"))
	s.Now = func() time.Time { return now }
	if err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{storetest.NewSpec("a")}); err != nil {
		t.Fatal(err)
	}
	at, ok, err := s.NextDue(t.Context())
	if err != nil || !ok || !at.Equal(now) {
		t.Errorf("NextDue = %v, %v, %v; want %v", at, ok, err, now)
	}
}

// TestAttemptsPruned checks that a job keeps only its newest 50 attempts.
func TestAttemptsPruned(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{storetest.NewSpec("a")}); err != nil {
		t.Fatal(err)
	}
	key := certfleet.JobKey{Spec: "a", KeyType: certfleet.ECDSAP256}
	const n = 60
	for i := range n {
		if _, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "a", Now: time.Now(), Lease: time.Minute, Limit: 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.FailJob(t.Context(), key, "a", certfleet.Attempt{Error: fmt.Sprint(i)}, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Attempts(t.Context(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || got[0].Error != fmt.Sprint(n-1) || got[49].Error != fmt.Sprint(n-50) {
		t.Errorf("kept %d attempts, newest %q, oldest %q; want 50, %d..%d", len(got), got[0].Error, got[len(got)-1].Error, n-1, n-50)
	}
	if j, _ := s.Job(t.Context(), key); j.Failures != n {
		t.Errorf("Failures = %d, want %d", j.Failures, n)
	}
}

// TestConcurrentWrites runs many writers at once (issuances, challenge
// tokens, claims): none may fail with SQLITE_BUSY.
func TestConcurrentWrites(t *testing.T) {
	s := newTestStore(t)
	specs := storetest.NewSpecs("w", 200)
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for range 200 { // bounded: a store that re-hands leased jobs fails, not hangs
				jobs, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: owner, Now: time.Now(), Lease: time.Minute, Limit: 2})
				if err != nil {
					fail(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				for _, j := range jobs {
					tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: j.Spec, KeyAuthorization: "x", Expires: time.Now().Add(time.Minute)}
					if err := s.PutChallenge(t.Context(), tok); err != nil {
						fail(err)
					}
					if _, err := s.Challenge(t.Context(), tok.Type, tok.Key); err != nil {
						fail(err)
					}
					sp := storetest.NewSpec(j.Spec)
					if _, err := s.CompleteIssuance(t.Context(), owner, storetest.NewIssuance(sp, j.KeyType),
						certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}, certfleet.Attempt{}); err != nil {
						fail(err)
					}
					if err := s.DeleteChallenge(t.Context(), tok.Type, tok.Key); err != nil {
						fail(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	all, err := s.Issuances(t.Context(), certfleet.IssuanceFilter{})
	if err != nil || len(all) != len(specs) {
		t.Errorf("archive holds %d issuances, %v; want %d", len(all), err, len(specs))
	}
}

func TestIntegrity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certfleet.db")
	s := mustOpen(t, path)
	if _, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, storetest.NewSpecs("i", 10)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	checkIntegrity(t, path)
}

// checkIntegrity checks the database file below the interface: SQLite's
// own integrity and foreign-key checks, and that each job's current
// issuance exists and belongs to it.
func checkIntegrity(t *testing.T, path string) {
	t.Helper()
	db := rawDB(t, path)
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
	rows, err := db.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Errorf("foreign_key_check found violations")
	}
	rows.Close()
	var bad int
	if err := db.QueryRow(`SELECT count(*) FROM jobs j LEFT JOIN issuances i ON i.id = j.current_id
		WHERE j.current_id IS NOT NULL AND (i.id IS NULL OR i.spec != j.spec OR i.key_type != j.key_type
			OR i.spec_revision != j.current_revision)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d jobs point at a missing or foreign issuance", bad)
	}
}
