package acmeissuer

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, header string
		want         time.Time
	}{
		{"empty", "", time.Time{}},
		{"seconds", "120", now.Add(2 * time.Minute)},
		{"zero", "0", now},
		{"negative", "-5", time.Time{}},
		{"http date", "Wed, 21 Oct 2026 07:28:00 GMT", time.Date(2026, 10, 21, 7, 28, 0, 0, time.UTC)},
		{"garbage", "soon", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRetryAfter(tc.header, now); !got.Equal(tc.want) {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestContactURLs(t *testing.T) {
	got := contactURLs([]string{"ops@example.org", " ", "mailto:a@example.org", "tel:+1555"})
	want := []string{"mailto:ops@example.org", "mailto:a@example.org", "tel:+1555"}
	if !slices.Equal(got, want) {
		t.Errorf("contactURLs = %q, want %q", got, want)
	}
}

func TestClassify(t *testing.T) {
	const dir = "https://ca.example/dir"
	now := time.Now()
	prob := func(typ string, status int) error {
		return acme.Problem{Type: acme.ProblemTypeNamespace + typ, Status: status, Detail: "detail"}
	}
	tests := []struct {
		name      string
		err       error
		status    int
		retryAt   time.Time
		wantCode  string
		noRetry   bool
		wantRetry bool
	}{
		{"rate limited with Retry-After", prob("rateLimited", 429), 429, now.Add(time.Hour), certfleet.ERATELIMITED, false, true},
		{"rate limited without", prob("rateLimited", 429), 429, time.Time{}, certfleet.ERATELIMITED, false, false},
		{"unauthorized", prob("unauthorized", 403), 403, time.Time{}, certfleet.EUNAUTHORIZED, true, false},
		{"caa", prob("caa", 403), 403, time.Time{}, certfleet.EUNAUTHORIZED, true, false},
		{"rejectedIdentifier", prob("rejectedIdentifier", 400), 400, time.Time{}, certfleet.EINVALID, true, false},
		{"badCSR", prob("badCSR", 400), 400, time.Time{}, certfleet.EINVALID, true, false},
		{"serverInternal", prob("serverInternal", 500), 500, time.Time{}, certfleet.EUNAVAILABLE, false, false},
		{"plain 502", errors.New("HTTP 502: bad gateway"), 502, time.Time{}, certfleet.EUNAVAILABLE, false, false},
		{"plain 503 with Retry-After", errors.New("HTTP 503"), 503, now.Add(time.Minute), certfleet.EUNAVAILABLE, false, true},
		{"Retry-After on a success is ignored", prob("malformed", 0), 200, now.Add(time.Minute), certfleet.EINTERNAL, false, false},
		{"malformed", prob("malformed", 400), 400, time.Time{}, certfleet.EINTERNAL, false, false},
		{"connection refused", &url.Error{Op: "Get", URL: dir, Err: errors.New("dial tcp: connection refused")}, 0, time.Time{}, certfleet.EUNAVAILABLE, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{status: tc.status, retryAfter: tc.retryAt}
			err := finish(classify(tc.err, rec, dir))
			if got := certfleet.ErrorCode(err); got != tc.wantCode {
				t.Errorf("code = %q, want %q", got, tc.wantCode)
			}
			if got := errors.As(err, new(certfleet.ErrNoRetry)); got != tc.noRetry {
				t.Errorf("ErrNoRetry = %t, want %t", got, tc.noRetry)
			}
			at, ok := certfleet.RetryAfter(err)
			if ok != tc.wantRetry || ok && !at.Equal(tc.retryAt) {
				t.Errorf("RetryAfter = %v, %t; want %v, %t", at, ok, tc.retryAt, tc.wantRetry)
			}
			if want, ok := tc.err.(acme.Problem); ok {
				var got acme.Problem
				if !errors.As(err, &got) || got.Type != want.Type {
					t.Errorf("the acme.Problem is not reachable from %v", err)
				}
			} else if !errors.Is(err, tc.err) {
				t.Errorf("the original error is not reachable from %v", err)
			}
			// Issue 16: the scheduler tells a CA outage (its circuit
			// breaker) from this certificate's own failure.
			if got, want := certfleet.IsCAOutage(err), tc.wantCode == certfleet.EUNAVAILABLE; got != want {
				t.Errorf("IsCAOutage = %t, want %t", got, want)
			}
			if err.Error() != tc.err.Error() && !tc.wantRetry {
				t.Errorf("message = %q, want the original %q", err.Error(), tc.err.Error())
			}
		})
	}
	if err := classify(context.Canceled, nil, dir); err != context.Canceled {
		t.Errorf("classify(context.Canceled) = %v, want it unchanged", err)
	}
}

func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	unlock, err := k.lockAll(t.Context(), []string{"b", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	// A second caller wanting an overlapping set waits, and gives up with
	// its context.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := k.lockAll(ctx, []string{"c", "a"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lockAll while held: err = %v, want DeadlineExceeded", err)
	}
	// Its partial lock ("a" comes before "c", so nothing was held) must
	// not linger: "c" is free.
	if err := k.lock(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	k.unlock("c")

	done := make(chan struct{})
	go func() {
		u, err := k.lockAll(t.Context(), []string{"a", "c"})
		if err == nil {
			u()
		}
		close(done)
	}()
	unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not get the lock after unlock")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.locks) != 0 {
		t.Errorf("locks left = %d, want 0", len(k.locks))
	}
}
