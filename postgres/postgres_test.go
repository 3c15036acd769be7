package postgres_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/internal/porttest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/storetest"
)

// newTestStore opens a store on a new schema, closed when t ends.
func newTestStore(t testing.TB) *postgres.Store {
	t.Helper()
	return mustOpen(t, pgtest.DSN(t))
}

func mustOpen(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}

// TestConcurrentMigrations opens one fresh schema from several pools at the
// same moment, as instances starting together do: the advisory lock makes
// exactly one of them create the schema and the others find it done.
func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		errs   = make([]error, n)
		stores = make([]*postgres.Store, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
		if v, err := stores[i].SchemaVersion(t.Context()); err != nil || v != postgres.LatestVersion() {
			t.Errorf("store %d: SchemaVersion = %d, %v; want %d", i, v, err, postgres.LatestVersion())
		}
	}
	db := rawConn(t, dsn)
	var rows int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if rows != len(files) || rows == 0 {
		t.Errorf("schema_migrations has %d rows, want %d (one per migration file)", rows, len(files))
	}
}

// TestConcurrentSync: instances starting at once sync the same config; both
// succeed, and the second finds everything unchanged.
func TestConcurrentSync(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	specs := storetest.NewSpecs("sync", 200)
	var wg sync.WaitGroup
	res := make([]certfleet.SyncResult, 2)
	errs := make([]error, 2)
	for i, s := range []*postgres.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = s.SyncSpecs(t.Context(), certfleet.SourceConfig, specs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	added := len(res[0].Added) + len(res[1].Added)
	unchanged := res[0].Unchanged + res[1].Unchanged
	if added != 200 || unchanged != 200 {
		t.Errorf("added %d, unchanged %d across both syncs; want 200 and 200", added, unchanged)
	}
}

func rawConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestReopen: what one store wrote, another pool reads back byte for byte,
// and opening again migrates nothing.
func TestReopen(t *testing.T) {
	dsn := pgtest.DSN(t)
	storetest.RunReopen(t, func(t *testing.T) certfleet.Store { return mustOpen(t, dsn) })
}

// TestNewerSchemaRefused: a database migrated by a newer certfleet is not
// touched.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	mustOpen(t, dsn).Close()
	if _, err := rawConn(t, dsn).Exec(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(t.Context(), dsn)
	if code := certfleet.ErrorCode(err); code != certfleet.EINVALID || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v (code %q); want an EINVALID error saying it is newer", err, code)
	}
}

// TestUnreachable: a server that is not there is EUNAVAILABLE, and the
// error names host and port but never the password.
func TestUnreachable(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(porttest.Free(t))) // reserved, nobody listens
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://certfleet:s3cr3t-pw@"+addr+"/db?sslmode=disable")
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if code := certfleet.ErrorCode(err); code != certfleet.EUNAVAILABLE {
		t.Errorf("code %q, want %q: %v", code, certfleet.EUNAVAILABLE, err)
	}
	if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error %q: want it to name %s and not the password", err, addr)
	}
}

// TestTranslate: driver errors get certfleet codes by SQLSTATE.
func TestTranslate(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := mustOpen(t, dsn)
	_ = s
	c := rawConn(t, dsn)
	tests := []struct {
		name, sql, code string
	}{
		{"unique", `INSERT INTO accounts (ca, name, contact, key_pem, url, created_at) VALUES ('c','n','[]','k','u',now()), ('c','n','[]','k','u',now())`, certfleet.ECONFLICT},
		{"foreign key", `INSERT INTO jobs (spec, key_type, target_revision, next_at) VALUES ('nope', 'k', 'r', now())`, certfleet.EINVALID},
		{"statement timeout", `SET LOCAL statement_timeout = '10ms'; SELECT pg_sleep(1)`, certfleet.EUNAVAILABLE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := c.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			_, err = tx.Exec(t.Context(), tc.sql)
			if got := certfleet.ErrorCode(postgres.TranslateForTest(err)); got != tc.code {
				t.Errorf("code of %v = %q, want %q", err, got, tc.code)
			}
		})
	}
}

// TestChangesAcrossInstances: a change committed through one store wakes a
// listener on another store (another instance) within a second, and a
// change in another schema does not.
func TestChangesAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	other := newTestStore(t) // another schema, same database
	ch := b.Changes(t.Context())
	expect(t, ch, true, "the listener's first connection") // it reports once when listening starts
	expect(t, ch, false, "nothing changed")

	if _, err := other.SyncSpecs(t.Context(), certfleet.SourceConfig, storetest.NewSpecs("other", 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, false, "a change in another schema")

	start := time.Now()
	if _, err := a.SyncSpecs(t.Context(), certfleet.SourceConfig, storetest.NewSpecs("x", 3)); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "specs synced on instance a")
	t.Logf("notification arrived %v after the sync began", time.Since(start))

	// Claiming and extending are not changes others need to hear of;
	// completing an issuance is.
	sp := storetest.NewSpec("x-000000")
	jobs, err := a.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "a", Now: time.Now(), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("ClaimDue = %d jobs, %v", len(jobs), err)
	}
	expect(t, ch, false, "ClaimDue")
	if _, err := a.CompleteIssuance(t.Context(), "a", storetest.NewIssuance(sp, certfleet.ECDSAP256),
		certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}, certfleet.Attempt{}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "CompleteIssuance")
	if err := a.ReleaseLease(t.Context(), jobs[1].JobKey, "a"); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "ReleaseLease")

	// Ending the context closes the channel.
	ctx, cancel := context.WithCancel(t.Context())
	ch2 := b.Changes(ctx)
	cancel()
	select {
	case _, ok := <-ch2:
		for ok {
			_, ok = <-ch2
		}
	case <-time.After(time.Second):
		t.Error("Changes channel not closed after its context ended")
	}
}

// TestChangesReconnect: when the listening connection is killed, the store
// reconnects, reports once (changes may have been missed), and relays
// notifications again.
func TestChangesReconnect(t *testing.T) {
	dsn := pgtest.DSN(t)
	app := fmt.Sprintf("certfleet-reconnect-%d", time.Now().UnixNano())
	b := mustOpen(t, dsn+"&application_name="+app)
	a := mustOpen(t, dsn)
	ch := b.Changes(t.Context())
	expect(t, ch, true, "the listener's first connection")
	var killed int
	if err := rawConn(t, dsn).QueryRow(t.Context(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no backend of the store found to terminate")
	}
	expect(t, ch, true, "the reconnection")
	if _, err := a.SyncSpecs(t.Context(), certfleet.SourceConfig, storetest.NewSpecs("y", 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "a change after the reconnection")
}

// expect checks whether ch receives within a second (want) or not.
func expect(t *testing.T, ch <-chan struct{}, want bool, what string) {
	t.Helper()
	wait := time.Second
	if !want {
		wait = 300 * time.Millisecond
	}
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		if !want {
			t.Errorf("%s: unexpected change notification", what)
		}
	case <-time.After(wait):
		if want {
			t.Errorf("%s: no change notification within %v", what, wait)
		}
	}
}

// TestStoreShared: the claim's order for instances sharing the database
// (abandoned work first; issue 16).
func TestStoreShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) certfleet.Store { return newTestStore(t) })
}
