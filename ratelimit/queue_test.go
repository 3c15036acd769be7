package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/ratelimit"
)

// TestDeferralQueueNoStorm is issue 13's finding, on a fake clock: 1,000
// names under a budget of 20 orders a minute were deferred again every
// window (980, 960, 1,322 deferrals in three windows), each writing an
// attempt, an audit event and a log line. Here 100 names wait for a budget
// of 10 orders a minute. The budget is a queue: after the first window
// each minute wakes exactly the 10 jobs whose turn it is (the turns are
// spread a minute apart, 10 per minute, from the start), each is ordered,
// nobody is deferred twice, and a restart halfway keeps the queue. In all:
// 100 orders at the CA, 10 a window; 90 deferred events, 90 released, and
// two attempts for each name that waited.
func TestDeferralQueueNoStorm(t *testing.T) {
	const names, perWindow = 100, 10
	e := newEnv(t)
	specs := make([]certfleet.CertificateSpec, names)
	for i := range specs {
		specs[i] = spec(t, fmt.Sprintf("q%03d", i), certfleet.ChallengeHTTP01, fmt.Sprintf("q%d.example.net", i))
	}
	e.sync(specs...)
	limits := ratelimit.Limits{NewOrdersPerAccount: ratelimit.Limit{Count: perWindow, Window: time.Minute}}
	m := e.manager(e.issuer(""), e.ca.DirectoryURL(), limits, 4)
	t0 := e.clock.Now()

	rep := runOnce(t, m)
	if rep.Issued != perWindow || rep.Deferred != names-perWindow || rep.Failed != 0 || e.ca.NewOrders() != perWindow {
		t.Fatalf("first window: %s, CA orders %d; want %d issued, %d deferred", summary(rep), e.ca.NewOrders(), perWindow, names-perWindow)
	}
	// Each waiting job knows its turn: 10 in the first minute, 10 in the
	// second, ... — not all 90 at the moment the first slot frees.
	turns := map[time.Duration]int{}
	for _, sp := range specs {
		if j := e.job(sp.Name); j.CurrentID == 0 {
			turns[j.NextAt.Sub(t0).Round(time.Second)]++
		}
	}
	for w := 1; w < names/perWindow; w++ {
		if n := turns[time.Duration(w)*time.Minute]; n != perWindow {
			t.Fatalf("jobs due at minute %d: %d, want %d (due times of the waiting jobs: %v)", w, n, perWindow, turns)
		}
	}

	for w := 1; w < names/perWindow; w++ {
		if w == names/perWindow/2 {
			// A restart: the store reopened, a new manager and budget.
			e.reopen()
			m = e.manager(e.issuer(""), e.ca.DirectoryURL(), limits, 4)
		}
		e.clock.Advance(time.Minute)
		rep := runOnce(t, m)
		if len(rep.Results) != perWindow || rep.Issued != perWindow || rep.Failed != 0 {
			t.Fatalf("window %d: %d jobs worked on, %s; want exactly the %d whose turn it is, issued",
				w, len(rep.Results), summary(rep), perWindow)
		}
		if got, want := e.ca.NewOrders(), int64(perWindow*(w+1)); got != want {
			t.Fatalf("window %d: CA orders %d, want %d: exactly the budget", w, got, want)
		}
		if n := e.events.count(certfleet.EventDeferred); n != names-perWindow {
			t.Fatalf("window %d: %d deferred events, want %d: a waiting job is deferred once, not once a window", w, n, names-perWindow)
		}
	}
	if n := e.events.count(certfleet.EventReleased); n != names-perWindow {
		t.Errorf("%d released events, want %d: one when each wait ended", n, names-perWindow)
	}
	attempts := 0
	for _, sp := range specs {
		j := e.job(sp.Name)
		if j.CurrentID == 0 {
			t.Fatalf("%s has no certificate after every window", sp.Name)
		}
		atts, err := e.store.Attempts(t.Context(), j.JobKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		deferred := 0
		for _, a := range atts {
			if a.Outcome == certfleet.OutcomeDeferred {
				deferred++
			}
		}
		if deferred > 1 {
			t.Errorf("%s: %d deferred attempts, want at most one", sp.Name, deferred)
		}
		attempts += len(atts)
	}
	if want := names + (names - perWindow); attempts != want {
		t.Errorf("%d attempts recorded, want %d (one issued each, one deferred each that waited)", attempts, want)
	}
}
