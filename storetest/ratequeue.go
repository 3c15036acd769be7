package storetest

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// The queues of jobs waiting for a rate-limit budget (issue 13).

func queueRequest(job string, at time.Time, limits ...certfleet.BudgetLimit) certfleet.BudgetRequest {
	return certfleet.BudgetRequest{CA: testCA, Job: keyOf(job, certfleet.ECDSAP256), At: at, Limits: limits}
}

func mustWaits(t *testing.T, s certfleet.RateLimitStore, f certfleet.BudgetWaitFilter) []certfleet.BudgetWait {
	t.Helper()
	waits, err := s.BudgetWaits(t.Context(), f)
	if err != nil {
		t.Fatalf("BudgetWaits(%+v): %v", f, err)
	}
	return waits
}

// waitingSpecs lists the waiting jobs' specs in queue order.
func waitingSpecs(t *testing.T, s certfleet.RateLimitStore) []string {
	t.Helper()
	var out []string
	for _, w := range mustWaits(t, s, certfleet.BudgetWaitFilter{}) {
		out = append(out, w.Job.Spec)
	}
	return out
}

// testQueue: jobs blocked by a bucket wait in its queue in the order they
// came, each with its place and the turn the window's slots give it; a
// slot that frees goes to the first in the queue, not to a newcomer or to
// the second; a check keeps the place, a reservation ends the wait.
func testQueue(t *testing.T, s certfleet.Store) {
	mustSync(t, s, certfleet.SourceConfig, NewSpec("q1"), NewSpec("q2"), NewSpec("q3"), NewSpec("q4"))
	orders := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 2, Window: time.Hour, Name: "new orders"}
	t0 := testT0
	for i, job := range []string{"q1", "q2"} {
		if res := mustReserve(t, s, queueRequest(job, t0.Add(time.Duration(i)*time.Minute), orders)); !res.OK || res.Released != nil || res.Wait != nil {
			t.Fatalf("%s: %+v; want a reservation, no wait", job, res)
		}
	}
	// q3 and q4 wait: q3 for the first slot to free (q1's, at t0+1h),
	// q4 for the second (q2's, at t0+1h+1m).
	res3 := mustReserve(t, s, queueRequest("q3", t0.Add(2*time.Minute), orders))
	w3 := res3.Wait
	if res3.OK || w3 == nil || !w3.New || w3.Place != 1 || w3.Ticket == 0 || w3.Bucket != orders.Bucket || w3.Name != orders.Name ||
		!sameTime(w3.Turn, t0.Add(time.Hour)) || !sameTime(res3.Until, t0.Add(time.Hour)) || !sameTime(w3.Since, t0.Add(2*time.Minute)) ||
		w3.Job != keyOf("q3", certfleet.ECDSAP256) || w3.CA != testCA {
		t.Fatalf("q3: %+v, wait %+v; want a new wait at place 1, turn %v", res3, w3, t0.Add(time.Hour))
	}
	res4 := mustReserve(t, s, queueRequest("q4", t0.Add(3*time.Minute), orders))
	if w := res4.Wait; res4.OK || w == nil || !w.New || w.Place != 2 || w.Ticket <= w3.Ticket || !sameTime(w.Turn, t0.Add(time.Hour+time.Minute)) {
		t.Fatalf("q4: %+v, wait %+v; want a new wait at place 2, turn %v", res4, w, t0.Add(time.Hour+time.Minute))
	}
	// Asked again before its turn, q3 keeps its ticket, place and turn.
	if res := mustReserve(t, s, queueRequest("q3", t0.Add(4*time.Minute), orders)); res.OK || res.Wait == nil || res.Wait.New ||
		res.Wait.Ticket != w3.Ticket || res.Wait.Place != 1 || !sameTime(res.Wait.Since, w3.Since) || !sameTime(res.Wait.Turn, w3.Turn) {
		t.Fatalf("q3 again: %+v, wait %+v; want the same wait, not new", res, res.Wait)
	}
	waits := mustWaits(t, s, certfleet.BudgetWaitFilter{})
	if len(waits) != 2 || waits[0].Job.Spec != "q3" || waits[0].Place != 1 || waits[1].Job.Spec != "q4" || waits[1].Place != 2 ||
		!sameTime(waits[1].Turn, t0.Add(time.Hour+time.Minute)) || waits[0].Ticket != w3.Ticket {
		t.Fatalf("BudgetWaits = %+v; want q3 at place 1, q4 at place 2", waits)
	}
	if w := mustWaits(t, s, certfleet.BudgetWaitFilter{Spec: "q4"}); len(w) != 1 || w[0].Place != 2 || w[0].Job.Spec != "q4" {
		t.Fatalf("BudgetWaits of q4 = %+v; want its place 2", w)
	}
	if w := mustWaits(t, s, certfleet.BudgetWaitFilter{Spec: "q4", KeyType: certfleet.RSA2048}); len(w) != 0 {
		t.Fatalf("BudgetWaits of q4's RSA job = %+v; want none", w)
	}

	// One slot frees at t0+1h: it is q3's. A request for no job, and q4,
	// are behind q3 and stay blocked; q4 keeps its place.
	at := t0.Add(time.Hour + 30*time.Second)
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: at, Limits: []certfleet.BudgetLimit{orders}}); res.OK || res.Wait != nil || res.Count != 1 {
		t.Fatalf("a newcomer while q3 waits: %+v; want blocked (1 entry, 2 waiting), not queued", res)
	}
	if res := mustReserve(t, s, queueRequest("q4", at, orders)); res.OK || res.Wait == nil || res.Wait.New || res.Wait.Place != 2 {
		t.Fatalf("q4 at q3's turn: %+v; want still waiting at place 2", res)
	}
	// A check passes q3 and keeps its place; the reservation ends its wait.
	check := queueRequest("q3", at, orders)
	check.Check = true
	if res := mustReserve(t, s, check); !res.OK || res.Reservation != 0 || res.Released != nil {
		t.Fatalf("check of q3 at its turn: %+v; want OK, nothing taken, still waiting", res)
	}
	if got := waitingSpecs(t, s); len(got) != 2 {
		t.Fatalf("waiting after a check: %v; want q3 and q4 still", got)
	}
	res := mustReserve(t, s, queueRequest("q3", at, orders))
	if !res.OK || res.Reservation == 0 || res.Released == nil || res.Released.Ticket != w3.Ticket || !sameTime(res.Released.Since, w3.Since) ||
		res.Released.Bucket != orders.Bucket {
		t.Fatalf("q3 at its turn: %+v, released %+v; want a reservation ending its wait", res, res.Released)
	}
	if w := mustWaits(t, s, certfleet.BudgetWaitFilter{}); len(w) != 1 || w[0].Job.Spec != "q4" || w[0].Place != 1 {
		t.Fatalf("waiting after q3 passed: %+v; want q4, now first", w)
	}
	// q2's slot frees at t0+1h+1m: q4 passes.
	if res := mustReserve(t, s, queueRequest("q4", t0.Add(time.Hour+time.Minute+time.Second), orders)); !res.OK || res.Released == nil {
		t.Fatalf("q4 at its turn: %+v; want a reservation ending its wait", res)
	}
	if got := waitingSpecs(t, s); len(got) != 0 {
		t.Fatalf("waiting at the end: %v; want none", got)
	}
}

// testQueueTurns: the turns of a long queue follow the window: with a
// limit of 2 per hour used up at t0 and t0+10m, places 1 and 2 get those
// slots an hour later, places 3 and 4 the slots places 1 and 2 take then,
// another hour later.
func testQueueTurns(t *testing.T, s certfleet.Store) {
	var specs []certfleet.CertificateSpec
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		specs = append(specs, NewSpec(n))
	}
	mustSync(t, s, certfleet.SourceConfig, specs...)
	l := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 2, Window: time.Hour, Name: "new orders"}
	mustReserve(t, s, queueRequest("a", testT0, l))
	mustReserve(t, s, queueRequest("b", testT0.Add(10*time.Minute), l))
	want := map[string]time.Duration{"c": time.Hour, "d": time.Hour + 10*time.Minute, "e": 2 * time.Hour, "f": 2*time.Hour + 10*time.Minute}
	for i, n := range []string{"c", "d", "e", "f"} {
		res := mustReserve(t, s, queueRequest(n, testT0.Add(20*time.Minute), l))
		if res.Wait == nil || res.Wait.Place != i+1 || !sameTime(res.Wait.Turn, testT0.Add(want[n])) {
			t.Fatalf("%s: %+v, wait %+v; want place %d, turn %v", n, res, res.Wait, i+1, testT0.Add(want[n]))
		}
	}
}

// testQueueLeave: a job whose attempt fails leaves the queue (a job backing
// off must not hold a place), a disabled job's place does not count, and
// a job a check-only limit blocks waits without a queue ahead of it.
func testQueueLeave(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	mustSync(t, s, certfleet.SourceConfig, NewSpec("x1"), NewSpec("x2"), NewSpec("x3"))
	l := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 1, Window: time.Hour, Name: "new orders"}
	mustReserve(t, s, queueRequest("x1", testT0, l))
	mustReserve(t, s, queueRequest("x2", testT0, l))
	mustReserve(t, s, queueRequest("x3", testT0, l))
	if got := waitingSpecs(t, s); len(got) != 2 || got[0] != "x2" || got[1] != "x3" {
		t.Fatalf("waiting: %v; want x2, x3", got)
	}
	key := keyOf("x2", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	if err := s.FailJob(ctx, key, "owner-a", certfleet.Attempt{Instance: "owner-a", Error: "prepare failed"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w := mustWaits(t, s, certfleet.BudgetWaitFilter{}); len(w) != 1 || w[0].Job.Spec != "x3" || w[0].Place != 1 {
		t.Fatalf("waiting after x2 failed: %+v; want x3 first", w)
	}
	// x3's spec withdrawn: its job is disabled, its place no longer
	// counts, and a newcomer passes when the slot frees.
	mustSync(t, s, certfleet.SourceConfig, NewSpec("x1"), NewSpec("x2"))
	if w := mustWaits(t, s, certfleet.BudgetWaitFilter{}); len(w) != 0 {
		t.Fatalf("waiting after x3 was disabled: %+v; want none", w)
	}
	if res := mustReserve(t, s, certfleet.BudgetRequest{CA: testCA, At: testT0.Add(time.Hour + time.Second), Limits: []certfleet.BudgetLimit{l}}); !res.OK {
		t.Fatalf("newcomer after the slot freed: %+v; want OK (the disabled x3 does not wait)", res)
	}
	if _, err := s.PruneBudget(ctx, testT0); err != nil {
		t.Fatal(err)
	}
	// A check-only limit (failed validations) has no queue: each job
	// waits for its own bucket's entries only.
	failed := certfleet.BudgetLimit{Bucket: "failed|default|x1.example.org", Limit: 1, Window: time.Hour, Name: "failed validations", CheckOnly: true}
	if err := s.RecordBudgetEvent(ctx, testCA, failed.Bucket, testT0); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"x1", "x2"} {
		res := mustReserve(t, s, queueRequest(n, testT0.Add(time.Minute), failed))
		if res.OK || res.Wait == nil || res.Wait.Place != 1 || !sameTime(res.Until, testT0.Add(time.Hour)) {
			t.Fatalf("%s blocked by failed validations: %+v, wait %+v; want place 1 until %v", n, res, res.Wait, testT0.Add(time.Hour))
		}
	}
}

// testQueueRefund: a slot given back early (a refund) wakes the first job
// waiting for it whose turn is still to come, and only that one: its turn
// and its job's next time become now.
func testQueueRefund(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	mustSync(t, s, certfleet.SourceConfig, NewSpec("r1"), NewSpec("r2"), NewSpec("r3"))
	now := time.Now().UTC()
	res := mustReserve(t, s, queueRequest("r1", now, domainLimit(1)))
	if !res.OK || res.Reservation == 0 {
		t.Fatalf("r1: %+v", res)
	}
	week := now.Add(7 * 24 * time.Hour)
	for _, n := range []string{"r2", "r3"} {
		key := keyOf(n, certfleet.ECDSAP256)
		r := mustReserve(t, s, queueRequest(n, now, domainLimit(1)))
		if r.OK || r.Wait == nil {
			t.Fatalf("%s: %+v; want waiting", n, r)
		}
		mustClaimKey(t, s, "owner-a", key)
		if err := s.DeferJob(ctx, key, "owner-a", certfleet.Attempt{Instance: "owner-a", Error: "waiting"}, r.Until); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RefundBudget(ctx, res.Reservation); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	w := mustWaits(t, s, certfleet.BudgetWaitFilter{})
	if len(w) != 2 || w[0].Job.Spec != "r2" || w[0].Turn.After(after) || !w[1].Turn.After(week.Add(-time.Minute)) {
		t.Fatalf("waits after the refund: %+v; want r2's turn now, r3's still a week or more away", w)
	}
	if j := mustJob(t, s, keyOf("r2", certfleet.ECDSAP256)); j.NextAt.After(after) {
		t.Errorf("r2 next at %v after the refund; want due now", j.NextAt)
	}
	if j := mustJob(t, s, keyOf("r3", certfleet.ECDSAP256)); j.NextAt.Before(week.Add(-time.Minute)) {
		t.Errorf("r3 next at %v after the refund; want its turn unchanged", j.NextAt)
	}
	if r := mustReserve(t, s, queueRequest("r2", after, domainLimit(1))); !r.OK || r.Released == nil {
		t.Fatalf("r2 after the refund: %+v; want its reservation", r)
	}
}

// testPostponeJob: PostponeJob moves a job's time and releases its lease,
// and records no attempt.
func testPostponeJob(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	sp := NewSpec("postponed")
	mustSync(t, s, certfleet.SourceConfig, sp)
	key := keyOf(sp.Name, certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	until := time.Now().Add(time.Hour).UTC()
	if err := s.PostponeJob(ctx, key, "owner-b", until); certfleet.ErrorCode(err) != certfleet.ELEASELOST {
		t.Fatalf("PostponeJob by another owner: %v; want %s", err, certfleet.ELEASELOST)
	}
	if err := s.PostponeJob(ctx, key, "owner-a", until); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	checkTime(t, "NextAt", j.NextAt, until)
	if j.LeaseOwner != "" || j.Failures != 0 {
		t.Errorf("job after PostponeJob: lease %q, failures %d; want free, 0", j.LeaseOwner, j.Failures)
	}
	if atts, err := s.Attempts(ctx, key, 0); err != nil || len(atts) != 0 {
		t.Errorf("attempts after PostponeJob: %+v, %v; want none", atts, err)
	}
	wantCode(t, "PostponeJob without a time", s.PostponeJob(ctx, key, "owner-a", time.Time{}), certfleet.EINVALID)
}
