package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/storetest"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestStoreAPIContract(t *testing.T) {
	storetest.RunAPI(t, func(t *testing.T) storetest.APIStore { return newTestStore(t) })
}

func TestStoreTenantContract(t *testing.T) {
	storetest.RunTenants(t, func(t *testing.T) storetest.TenantStore { return newTestStore(t) },
		func(t *testing.T) storetest.TenantStore { return newSealedTestStore(t) })
}

// TestKeyReadsAppendOnly: the database refuses to change, delete or
// truncate the key-read log, whoever asks.
func TestKeyReadsAppendOnly(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := mustOpen(t, dsn)
	if err := s.RecordKeyRead(t.Context(), certfleet.KeyRead{TokenID: "tok_a", Spec: "web", KeyType: certfleet.ECDSAP256,
		IssuanceID: 1, Serial: "ab", Remote: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	db := rawConn(t, dsn)
	for _, q := range []string{
		`UPDATE key_reads SET token_id = 'tok_b'`,
		`DELETE FROM key_reads`,
		`TRUNCATE key_reads`,
	} {
		_, err := db.Exec(t.Context(), q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s: %v; want refused (SQLSTATE 42501)", q, err)
		}
	}
	reads, err := s.KeyReads(t.Context(), 0)
	if err != nil || len(reads) != 1 || reads[0].TokenID != "tok_a" {
		t.Fatalf("KeyReads = %+v, %v; want the one read, unchanged", reads, err)
	}
}

// TestWithdrawDestroysEveryKey: withdrawing with destroyKeys leaves no key
// bytes in the spec's rows, the archive's nor a pending order's, and leaves
// other specs' keys alone.
func TestWithdrawDestroysEveryKey(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := mustOpen(t, dsn)
	ctx := t.Context()
	var specs []certfleet.CertificateSpec
	for _, name := range []string{"gone", "kept"} {
		sp := storetest.NewSpec(name)
		sp.Source = certfleet.SourceAPI
		if _, err := s.PutSpec(ctx, sp); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	// Each spec: one certificate issued, then a renewal in flight.
	if jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10}); err != nil || len(jobs) != 2 {
		t.Fatalf("claim: %d, %v", len(jobs), err)
	}
	for _, sp := range specs {
		key := certfleet.JobKey{Spec: sp.Name, KeyType: certfleet.ECDSAP256}
		if _, err := s.CompleteIssuance(ctx, "o", storetest.NewIssuance(sp, certfleet.ECDSAP256),
			certfleet.ScheduleUpdate{NextAt: time.Now()}, certfleet.Attempt{JobKey: key, Instance: "o", Outcome: certfleet.OutcomeIssued}); err != nil {
			t.Fatal(err)
		}
	}
	if jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10}); err != nil || len(jobs) != 2 {
		t.Fatalf("claim again: %d, %v", len(jobs), err)
	}
	for _, sp := range specs {
		key := certfleet.JobKey{Spec: sp.Name, KeyType: certfleet.ECDSAP256}
		if err := s.SetPendingOrder(ctx, key, "o", "https://ca.test/order/"+sp.Name, []byte("-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WithdrawSpec(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	db := rawConn(t, dsn)
	count := func(q, spec string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, q, spec).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const (
		archived = `SELECT count(*) FROM issuances WHERE spec = $1 AND key_pem IS NOT NULL`
		pending  = `SELECT count(*) FROM jobs WHERE spec = $1 AND (pending_key IS NOT NULL OR pending_order_url <> '' OR current_id IS NOT NULL)`
	)
	if n := count(archived, "gone"); n != 0 {
		t.Errorf("%d archived keys of the withdrawn spec remain", n)
	}
	if n := count(pending, "gone"); n != 0 {
		t.Errorf("%d jobs of the withdrawn spec keep a pending key, order or current certificate", n)
	}
	if n := count(archived, "kept"); n != 1 {
		t.Errorf("the other spec has %d archived keys, want 1", n)
	}
	if n := count(pending, "kept"); n != 1 {
		t.Errorf("the other spec's job lost its pending order or current certificate")
	}
}

// TestSpecWriterNotifies: PutSpec and WithdrawSpec on one instance wake
// another instance's Changes; a PutSpec that changes nothing does not.
func TestSpecWriterNotifies(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	ch := b.Changes(t.Context())
	expect(t, ch, true, "the listener's first connection")
	sp := storetest.NewSpec("api")
	sp.Source = certfleet.SourceAPI
	if _, err := a.PutSpec(t.Context(), sp); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "PutSpec of a new name")
	if _, err := a.PutSpec(t.Context(), sp); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, false, "PutSpec changing nothing")
	sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "more.certfleet.test"})
	if _, err := a.PutSpec(t.Context(), sp); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "PutSpec changing the identifiers")
	if err := a.WithdrawSpec(t.Context(), sp.Name, false); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, true, "WithdrawSpec")
}

// TestConcurrentPutSpec: two instances putting the same new names at the
// same moment (a control panel retrying against a load balancer) both
// succeed, and each name is added exactly once.
func TestConcurrentPutSpec(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{mustOpen(t, dsn), mustOpen(t, dsn)}
	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		changed [2][n]bool
		errs    [2][n]error
	)
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := range n {
				sp := storetest.NewSpec(fmt.Sprintf("put-%03d", k))
				sp.Source = certfleet.SourceAPI
				changed[i][k], errs[i][k] = s.PutSpec(t.Context(), sp)
			}
		}()
	}
	close(start)
	wg.Wait()
	for k := range n {
		if errs[0][k] != nil || errs[1][k] != nil {
			t.Fatalf("put-%03d: %v / %v; want both to succeed", k, errs[0][k], errs[1][k])
		}
		if changed[0][k] == changed[1][k] {
			t.Errorf("put-%03d: changed %v and %v; want exactly one put to add it", k, changed[0][k], changed[1][k])
		}
	}
	jobs, err := stores[0].Jobs(t.Context(), certfleet.JobFilter{})
	if err != nil || len(jobs) != n {
		t.Fatalf("%d jobs, %v; want %d", len(jobs), err, n)
	}
}

func TestStoreFleetContract(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetStore { return newTestStore(t) })
}

func TestStoreIdentityContract(t *testing.T) {
	storetest.RunIdentities(t, func(t *testing.T) certfleet.IdentityStore { return newTestStore(t) },
		func(t *testing.T) certfleet.IdentityStore { return newSealedTestStore(t) })
}

func TestHeartbeats(t *testing.T) {
	storetest.RunHeartbeats(t, func(t *testing.T) certfleet.HeartbeatStore { return newTestStore(t) })
}

func TestStoreNamesContract(t *testing.T) {
	storetest.RunNames(t, func(t *testing.T) storetest.TenantStore { return newTestStore(t) })
}

func TestStoreListingContract(t *testing.T) {
	storetest.RunListing(t, func(t *testing.T) storetest.TenantStore { return newTestStore(t) })
}
