package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
)

// TestRetryHealthySaysWhyAndForceRenews guards issue 15, finding 6: POST
// …/retry on a healthy certificate answered 202 and the audit said "due
// now", but no order was placed and the next check moved hours away,
// without a word. Now the answer is a 409 saying until when the
// certificate is valid, when it is renewed and how to renew anyway; the
// job is left as it was; and ?force=true places exactly one new order at
// the CA (Pebble) and brings a new certificate.
func TestRetryHealthySaysWhyAndForceRenews(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "retry.e2e.test"
	st := e.issue(name, nil)
	old := st.Keys[0].Serial
	key := certfleet.JobKey{Spec: st.Certificate, KeyType: st.Keys[0].KeyType}
	before, err := e.store.Job(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	orders := e.ca.NewOrders()

	_, err = e.admin.Retry(ctx, name)
	var prob *httpapi.Problem
	if !errors.As(err, &prob) || prob.Status != http.StatusConflict {
		t.Fatalf("retry of a healthy certificate: %v; want a 409 problem saying why nothing is ordered", err)
	}
	for _, want := range []string{"nothing to retry", "valid until", "renewal due at", "nothing was ordered", "?force=true"} {
		if !strings.Contains(prob.Detail, want) {
			t.Errorf("retry answer %q does not say %q", prob.Detail, want)
		}
	}
	after, err := e.store.Job(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !after.NextAt.Equal(before.NextAt) || !after.RenewRequested.IsZero() {
		t.Errorf("a refused retry changed the job: next check %v → %v, renew requested %v", before.NextAt, after.NextAt, after.RenewRequested)
	}
	evs, err := e.store.Events(ctx, certfleet.EventFilter{Certificate: st.Certificate, Kind: certfleet.EventRetry})
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Detail, "not due, nothing ordered") {
		t.Errorf("audit of the refused retry: %+v, %v; want one event saying nothing was ordered", evs, err)
	}

	// Forced: exactly one new order, and a new certificate.
	got, err := e.admin.Renew(ctx, name)
	if err != nil {
		t.Fatalf("retry?force=true: %v", err)
	}
	if len(got.Retry) != 1 || got.Retry[0].Action != httpapi.RetryForced {
		t.Errorf("forced retry answer: %+v; want one key type, action %q", got.Retry, httpapi.RetryForced)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		cur, _, _, err := e.admin.Status(wctx, name, httpapi.FetchOptions{})
		if err != nil {
			t.Fatalf("status after the forced retry: %v", err)
		}
		if cur.Issued && cur.Keys[0].Serial != old {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("no new certificate after a forced retry: %+v", cur)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := e.ca.NewOrders() - orders; n != 1 {
		t.Errorf("a forced retry placed %d orders at the CA, want exactly 1", n)
	}
	if j, err := e.store.Job(ctx, key); err != nil || !j.RenewRequested.IsZero() {
		t.Errorf("after the forced renewal: renew requested %v, %v; want cleared by the issuance", j.RenewRequested, err)
	}
	// The new certificate is healthy again: a plain retry is refused.
	if _, err := e.admin.Retry(ctx, name); !errors.As(err, &prob) || prob.Status != http.StatusConflict {
		t.Errorf("retry after the forced renewal: %v; want 409", err)
	}
}
