package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunRateLimit runs the contract of certfleet.RateLimitStore: reservations
// fill a bucket up to its limit and no further, the blocked answer says
// when the next slot frees, check-only limits count without adding,
// refunds give back only refundable entries, buckets slide with time and
// are per CA, holds keep the later time and survive as stored, pruning
// deletes old rows, DeferJob is no failure, concurrent reservations
// never exceed a limit, and jobs a limit blocks wait in its queue
// (ratequeue.go).
func RunRateLimit(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	t.Run("ReserveUpToLimit", func(t *testing.T) { testReserveUpToLimit(t, newStore(t)) })
	t.Run("CheckOnlyAndEvents", func(t *testing.T) { testCheckOnly(t, newStore(t)) })
	t.Run("Refund", func(t *testing.T) { testRefund(t, newStore(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, newStore(t)) })
	t.Run("Holds", func(t *testing.T) { testHolds(t, newStore(t)) })
	t.Run("DeferJob", func(t *testing.T) { testDeferJob(t, newStore(t)) })
	t.Run("ReserveConcurrent", func(t *testing.T) {
		s := newStore(t)
		RunReserveConcurrent(t, []certfleet.RateLimitStore{s, s})
	})
	t.Run("Invalid", func(t *testing.T) { testBudgetInvalid(t, newStore(t)) })
	t.Run("Queue", func(t *testing.T) { testQueue(t, newStore(t)) })
	t.Run("QueueTurns", func(t *testing.T) { testQueueTurns(t, newStore(t)) })
	t.Run("QueueLeave", func(t *testing.T) { testQueueLeave(t, newStore(t)) })
	t.Run("QueueRefund", func(t *testing.T) { testQueueRefund(t, newStore(t)) })
	t.Run("PostponeJob", func(t *testing.T) { testPostponeJob(t, newStore(t)) })
}

const testCA = "https://ca.test/directory"

var testT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func domainLimit(n int) certfleet.BudgetLimit {
	return certfleet.BudgetLimit{Bucket: "domain|example.com", Limit: n, Window: 7 * 24 * time.Hour,
		Name: "certificates for example.com", Refundable: true}
}

func mustReserve(t *testing.T, s certfleet.RateLimitStore, r certfleet.BudgetRequest) certfleet.BudgetResult {
	t.Helper()
	res, err := s.ReserveBudget(t.Context(), r)
	if err != nil {
		t.Fatalf("ReserveBudget(%s at %v): %v", r.Job, r.At, err)
	}
	return res
}

func testReserveUpToLimit(t *testing.T, s certfleet.Store) {
	ordersLimit := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 10, Window: 3 * time.Hour, Name: "new orders"}
	ids := map[int64]bool{}
	// Three reservations an hour apart fill a limit of 3.
	for i := range 3 {
		res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, Job: keyOf(fmt.Sprint("a", i), certfleet.ECDSAP256),
			At: testT0.Add(time.Duration(i) * time.Hour), Limits: []certfleet.BudgetLimit{domainLimit(3), ordersLimit}})
		if !res.OK || res.Reservation == 0 || ids[res.Reservation] {
			t.Fatalf("reservation %d: %+v; want OK with a new ID", i, res)
		}
		ids[res.Reservation] = true
	}
	// The fourth is blocked until the first leaves the window, and adds
	// nothing to the other bucket.
	at := testT0.Add(5 * time.Hour)
	res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, Job: keyOf("b", certfleet.ECDSAP256), At: at,
		Limits: []certfleet.BudgetLimit{ordersLimit, domainLimit(3)}})
	if res.OK || res.Blocked.Bucket != "domain|example.com" || res.Count != 3 || !sameTime(res.Until, testT0.Add(7*24*time.Hour)) {
		t.Fatalf("fourth reservation: %+v; want blocked on the domain, 3 used, until %v", res, testT0.Add(7*24*time.Hour))
	}
	if res.Blocked.Name != "certificates for example.com" || res.Blocked.Limit != 3 {
		t.Errorf("blocked limit %+v: want the domain limit as given", res.Blocked)
	}
	// A limit of 2 over the same bucket frees when the second-oldest of
	// the three leaves: two more than the limit must go.
	res = mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: at, Limits: []certfleet.BudgetLimit{domainLimit(2)}})
	if res.OK || !sameTime(res.Until, testT0.Add(time.Hour+7*24*time.Hour)) {
		t.Fatalf("limit 2: %+v; want blocked until %v", res, testT0.Add(time.Hour+7*24*time.Hour))
	}
	// The orders bucket holds 3 entries, not 4: the blocked request added none.
	res = mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: at, Limits: []certfleet.BudgetLimit{
		{Bucket: "orders|default", Limit: 3, Window: 24 * time.Hour, Name: "orders"}}})
	if res.OK || res.Count != 3 {
		t.Fatalf("orders bucket: %+v; want 3 entries, blocked at a limit of 3", res)
	}
	// Another CA's buckets are its own.
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: "https://other.test/dir", At: at,
		Limits: []certfleet.BudgetLimit{domainLimit(3)}}); !res.OK {
		t.Fatalf("other CA: %+v; want OK", res)
	}
	// Once the first entry left the window a slot is free, and only one.
	later := testT0.Add(7*24*time.Hour + time.Second)
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: later, Limits: []certfleet.BudgetLimit{domainLimit(3)}}); !res.OK {
		t.Fatalf("after the window: %+v; want OK", res)
	}
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: later, Limits: []certfleet.BudgetLimit{domainLimit(3)}}); res.OK {
		t.Fatalf("second after the window: %+v; want blocked", res)
	}
	// No limits, or check-only ones: OK, and nothing reserved.
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: later}); !res.OK || res.Reservation != 0 {
		t.Fatalf("no limits: %+v; want OK without a reservation", res)
	}
	check := domainLimit(3)
	check.CheckOnly = true
	check.Bucket = "domain|example.net"
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: later, Limits: []certfleet.BudgetLimit{check}}); !res.OK || res.Reservation != 0 {
		t.Fatalf("check only: %+v; want OK without a reservation", res)
	}
}

func testCheckOnly(t *testing.T, s certfleet.Store) {
	failed := certfleet.BudgetLimit{Bucket: "failed|default|www.example.com", Limit: 2, Window: time.Hour,
		Name: "failed validations", CheckOnly: true}
	for range 5 {
		if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{failed}}); !res.OK {
			t.Fatalf("check-only limit with no events: %+v; want OK (checks add nothing)", res)
		}
	}
	for i := range 2 {
		if err := s.RecordBudgetEvent(t.Context(), testCA, failed.Bucket, testT0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0.Add(10 * time.Minute), Limits: []certfleet.BudgetLimit{failed}})
	if res.OK || res.Count != 2 || !sameTime(res.Until, testT0.Add(time.Hour)) {
		t.Fatalf("after two failures: %+v; want blocked until %v", res, testT0.Add(time.Hour))
	}
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0.Add(time.Hour + time.Second),
		Limits: []certfleet.BudgetLimit{failed}}); !res.OK {
		t.Fatalf("an hour later: %+v; want OK", res)
	}
}

func testRefund(t *testing.T, s certfleet.Store) {
	orders := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 1, Window: time.Hour, Name: "orders"}
	res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{domainLimit(1), orders}})
	if !res.OK {
		t.Fatalf("reserve: %+v", res)
	}
	if err := s.RefundBudget(t.Context(), res.Reservation); err != nil {
		t.Fatal(err)
	}
	// The refundable domain entry is gone, the order entry stays.
	if r := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{domainLimit(1)}}); !r.OK {
		t.Fatalf("domain after refund: %+v; want OK", r)
	}
	if r := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{orders}}); r.OK {
		t.Fatalf("orders after refund: %+v; want still blocked (an order is not refunded)", r)
	}
	// Refunding twice, or an unknown reservation, is harmless.
	if err := s.RefundBudget(t.Context(), res.Reservation); err != nil {
		t.Fatal(err)
	}
	if err := s.RefundBudget(t.Context(), 987654); err != nil {
		t.Fatal(err)
	}
}

func testPrune(t *testing.T, s certfleet.Store) {
	for i := range 4 {
		mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0.Add(time.Duration(i) * 24 * time.Hour),
			Limits: []certfleet.BudgetLimit{domainLimit(100)}})
	}
	if err := s.SetRateHold(t.Context(), certfleet.RateHold{CA: testCA, Account: "old", Until: testT0.Add(time.Hour), Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneBudget(t.Context(), testT0.Add(2*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Two log entries, their two reservations, one hold.
	if n != 5 {
		t.Errorf("PruneBudget removed %d rows, want 5", n)
	}
	res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0.Add(4 * 24 * time.Hour), Limits: []certfleet.BudgetLimit{domainLimit(2)}})
	if res.OK || res.Count != 2 {
		t.Fatalf("after pruning: %+v; want the 2 newer entries left", res)
	}
}

func testHolds(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	h := certfleet.RateHold{CA: testCA, Account: "default", Until: testT0.Add(time.Hour), Reason: "too many new orders", SetAt: testT0}
	if err := s.SetRateHold(ctx, h); err != nil {
		t.Fatal(err)
	}
	// An earlier time does not shorten it; a later one extends it.
	if err := s.SetRateHold(ctx, certfleet.RateHold{CA: testCA, Account: "default", Until: testT0.Add(time.Minute), Reason: "short", SetAt: testT0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RateHolds(ctx, testT0)
	if err != nil || len(got) != 1 || !sameTime(got[0].Until, h.Until) || got[0].Reason != h.Reason || !sameTime(got[0].SetAt, testT0) {
		t.Fatalf("RateHolds = %+v, %v; want the first hold kept", got, err)
	}
	if err := s.SetRateHold(ctx, certfleet.RateHold{CA: testCA, Account: "default", Until: testT0.Add(2 * time.Hour), Reason: "longer", SetAt: testT0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRateHold(ctx, certfleet.RateHold{CA: testCA, Account: "customer1", Until: testT0.Add(30 * time.Minute), Reason: "x", SetAt: testT0}); err != nil {
		t.Fatal(err)
	}
	got, err = s.RateHolds(ctx, testT0)
	if err != nil || len(got) != 2 || got[0].Account != "customer1" || got[1].Account != "default" ||
		!sameTime(got[1].Until, testT0.Add(2*time.Hour)) || got[1].Reason != "longer" || got[1].CA != testCA {
		t.Fatalf("RateHolds = %+v, %v; want customer1, then default extended to +2h", got, err)
	}
	// Only holds still in force are listed.
	got, err = s.RateHolds(ctx, testT0.Add(time.Hour))
	if err != nil || len(got) != 1 || got[0].Account != "default" {
		t.Fatalf("RateHolds an hour later = %+v, %v; want default only", got, err)
	}
}

func testDeferJob(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	sp := NewSpec("deferred", certfleet.ECDSAP256)
	mustSync(t, s, certfleet.SourceConfig, sp)
	key := keyOf(sp.Name, certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	if err := s.FailJob(ctx, key, "owner-a", certfleet.Attempt{Instance: "owner-a", Error: "boom"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	mustClaimKey(t, s, "owner-a", key)
	if err := s.SetPendingOrder(ctx, key, "owner-a", "https://ca.test/order/1", []byte("key")); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(48 * time.Hour).UTC()
	reason := "deferred until …: certificates for example.com"
	if err := s.DeferJob(ctx, key, "owner-b", certfleet.Attempt{Instance: "owner-b", Error: reason}, until); certfleet.ErrorCode(err) != certfleet.ELEASELOST {
		t.Fatalf("DeferJob by another owner: %v; want %s", err, certfleet.ELEASELOST)
	}
	if err := s.DeferJob(ctx, key, "owner-a", certfleet.Attempt{Instance: "owner-a", StartedAt: time.Now(), Error: reason}, until); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	checkTime(t, "NextAt", j.NextAt, until)
	if j.Failures != 1 || j.LastError != "boom" || j.LeaseOwner != "" || j.PendingOrderURL != "https://ca.test/order/1" {
		t.Errorf("job after DeferJob: failures %d, last error %q, lease %q, pending %q; want 1, boom, none, the order kept",
			j.Failures, j.LastError, j.LeaseOwner, j.PendingOrderURL)
	}
	atts, err := s.Attempts(ctx, key, 1)
	if err != nil || len(atts) != 1 || atts[0].Outcome != certfleet.OutcomeDeferred || atts[0].Error != reason || atts[0].Instance != "owner-a" {
		t.Fatalf("latest attempt = %+v, %v; want deferred with the reason", atts, err)
	}
	if err := s.DeferJob(ctx, key, "owner-a", certfleet.Attempt{}, time.Time{}); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Errorf("DeferJob without a time: %v; want %s", err, certfleet.EINVALID)
	}
}

// RunReserveConcurrent has 4 goroutines per store reserve from one bucket
// of limit 25, 20 times each, at once: exactly 25 must succeed. Give it
// several stores on one shared database to test instances.
func RunReserveConcurrent(t *testing.T, stores []certfleet.RateLimitStore) {
	const limit, perWorker = 25, 20
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	start := make(chan struct{})
	for k, s := range stores {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range perWorker {
					res, err := s.ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: testCA,
						Job: keyOf(fmt.Sprintf("s%d-w%d-%d", k, w, i), certfleet.ECDSAP256), At: testT0.Add(time.Duration(i) * time.Millisecond),
						Limits: []certfleet.BudgetLimit{domainLimit(limit),
							{Bucket: "orders|default", Limit: 1000, Window: time.Hour, Name: "orders"}}})
					if err != nil {
						t.Errorf("ReserveBudget: %v", err)
						return
					}
					if res.OK {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if ok != limit {
		t.Fatalf("%d reservations succeeded against a limit of %d", ok, limit)
	}
	res, err := stores[0].ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: testCA, At: testT0.Add(time.Second),
		Limits: []certfleet.BudgetLimit{{Bucket: "orders|default", Limit: limit, Window: time.Hour, Name: "orders"}}})
	if err != nil || res.OK || res.Count != limit {
		t.Fatalf("orders bucket after the race: %+v, %v; want exactly %d entries", res, err, limit)
	}
}

func testBudgetInvalid(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	for _, r := range []certfleet.BudgetRequest{
		{At: testT0},
		{CA: testCA},
		{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{{Bucket: "x", Limit: 0, Window: time.Hour}}},
		{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{{Bucket: "", Limit: 1, Window: time.Hour}}},
		{CA: testCA, At: testT0, Limits: []certfleet.BudgetLimit{{Bucket: "x", Limit: 1}}},
	} {
		_, err := s.ReserveBudget(ctx, r)
		wantCode(t, fmt.Sprintf("ReserveBudget(%+v)", r), err, certfleet.EINVALID)
	}
	wantCode(t, "SetRateHold without time", s.SetRateHold(ctx, certfleet.RateHold{CA: testCA, Account: "a"}), certfleet.EINVALID)
	wantCode(t, "RecordBudgetEvent without bucket", s.RecordBudgetEvent(ctx, testCA, "", testT0), certfleet.EINVALID)
}
