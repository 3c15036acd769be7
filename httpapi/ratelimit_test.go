package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestStatusShowsDeferral: a job a rate-limit budget deferred shows the
// reason and the time in the name's status, JSON and HTML, and no longer
// once the time has passed.
func TestStatusShowsDeferral(t *testing.T) {
	srv, secret := newBareServer(t)
	now := time.Now().UTC()
	srv.Now = func() time.Time { return now }
	h := srv.Handler()
	do := func(method, path, accept string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("PUT", "/v1/names/d.example.org", ""); rec.Code >= 300 {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	store := srv.Store.(certfleet.Store)
	jobs, err := store.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "i1", Now: now.Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	until := now.Add(72 * time.Hour).Truncate(time.Microsecond)
	de := &certfleet.DeferError{Limit: "certificates_per_domain", Until: until,
		Reason: "rate-limit budget of https://acme-v02.api.letsencrypt.org/directory exhausted: certificates for registered domain example.org, 50 of 50 used in the last 7d"}
	if err := store.DeferJob(t.Context(), jobs[0].JobKey, "i1", certfleet.Attempt{Instance: "i1", StartedAt: now, Error: de.Error()}, until); err != nil {
		t.Fatal(err)
	}
	rec := do("GET", "/v1/names/d.example.org/status", "")
	var st NameStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || len(st.Keys) != 1 {
		t.Fatalf("status %d: %s (%v)", rec.Code, rec.Body, err)
	}
	k := st.Keys[0]
	if k.Deferred != de.Error() || !k.DeferredUntil.Equal(until) || k.Failures != 0 || k.LastError != "" ||
		len(k.Attempts) != 1 || k.Attempts[0].Outcome != certfleet.OutcomeDeferred {
		t.Fatalf("key status %+v; want the deferral with its time, no failure", k)
	}
	if rec := do("GET", "/v1/names/d.example.org/status", "text/html"); !strings.Contains(rec.Body.String(), "certificates for registered domain example.org") {
		t.Fatalf("HTML status lacks the reason:\n%s", rec.Body)
	}
	now = until.Add(time.Second)
	st = NameStatus{}
	rec = do("GET", "/v1/names/d.example.org/status", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Keys[0].Deferred != "" || !st.Keys[0].DeferredUntil.IsZero() {
		t.Fatalf("after the time: %s (%v); want no deferral shown", rec.Body, err)
	}
}

// TestStatusShowsQueuePlace: a job waiting in a rate-limit budget's queue
// shows its place as it is now (issue 13), not the one it had when it
// started waiting: when the job ahead of it gets its turn, it moves up.
func TestStatusShowsQueuePlace(t *testing.T) {
	srv, secret := newBareServer(t)
	now := time.Now().UTC()
	srv.Now = func() time.Time { return now }
	h := srv.Handler()
	do := func(method, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, n := range []string{"q1.example.org", "q2.example.org"} {
		if rec := do("PUT", "/v1/names/"+n); rec.Code >= 300 {
			t.Fatalf("PUT %s: %d %s", n, rec.Code, rec.Body)
		}
	}
	store := srv.Store.(certfleet.Store)
	jobs, err := store.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "i1", Now: now.Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	const ca = "https://acme-v02.api.letsencrypt.org/directory"
	orders := certfleet.BudgetLimit{Bucket: "orders|default", Limit: 1, Window: time.Hour, Name: `new orders of account "default"`}
	if res, err := store.ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: ca, At: now, Limits: []certfleet.BudgetLimit{orders}}); err != nil || !res.OK {
		t.Fatalf("fill the budget: %+v, %v", res, err)
	}
	byName := map[string]certfleet.JobKey{}
	for _, j := range jobs {
		byName[j.Spec] = j.JobKey
	}
	// q1 waits first, q2 behind it.
	for _, name := range []string{"q1.example.org", "q2.example.org"} {
		key := byName[name]
		res, err := store.ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: ca, Job: key, At: now, Limits: []certfleet.BudgetLimit{orders}})
		if err != nil || res.OK || res.Wait == nil {
			t.Fatalf("%s: %+v, %v; want waiting", name, res, err)
		}
		de := &certfleet.DeferError{Limit: "new_orders_per_account", Until: res.Until, Reason: "budget exhausted", Wait: res.Wait}
		if err := store.DeferJob(t.Context(), key, "i1", certfleet.Attempt{Instance: "i1", StartedAt: now, Error: de.Error()}, res.Until); err != nil {
			t.Fatal(err)
		}
	}
	place := func(name string) string {
		t.Helper()
		var st NameStatus
		rec := do("GET", "/v1/names/"+name+"/status")
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || len(st.Keys) != 1 {
			t.Fatalf("status %d: %s (%v)", rec.Code, rec.Body, err)
		}
		return st.Keys[0].Deferred
	}
	if got := place("q2.example.org"); !strings.Contains(got, `waiting for budget new orders of account "default": place 2, turn at `) {
		t.Fatalf("q2 while q1 waits: %q; want place 2", got)
	}
	// q1's turn: it reserves and leaves the queue; q2 is next.
	if res, err := store.ReserveBudget(t.Context(), certfleet.BudgetRequest{CA: ca, Job: byName["q1.example.org"], At: now.Add(time.Hour + time.Second),
		Limits: []certfleet.BudgetLimit{orders}}); err != nil || !res.OK || res.Released == nil {
		t.Fatalf("q1 at its turn: %+v, %v", res, err)
	}
	if got := place("q2.example.org"); !strings.Contains(got, "place 1, turn at ") {
		t.Fatalf("q2 after q1 passed: %q; want place 1", got)
	}
}
