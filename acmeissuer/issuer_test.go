package acmeissuer_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/mholt/acmez/v3/acme"
)

func TestIssue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		keyType certfleet.KeyType
		names   []string
	}{
		{"ecdsa multi-name", certfleet.ECDSAP256, []string{"a.example", "b.example.org", "127.0.0.1"}},
		{"rsa multi-name", certfleet.RSA2048, []string{"www.example.net", "example.net", "127.0.0.1"}},
		{"ecdsa ip only", certfleet.ECDSAP256, []string{"127.0.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, pebbleca.Config{})
			iss := env.newTestIssuer(t, nil)
			req := newTestRequest(t, tc.keyType, tc.names...)
			var onOrder []string
			req.OnOrder = func(_ context.Context, u string) error {
				onOrder = append(onOrder, u)
				return nil
			}
			res := mustIssue(t, iss, req)
			mustVerify(t, res.ChainPEM, env.ca.Roots(), req)
			if len(onOrder) != 1 || onOrder[0] != res.OrderURL {
				t.Errorf("OnOrder calls = %q, want [%q]", onOrder, res.OrderURL)
			}
			if res.CA != env.ca.DirectoryURL() || res.AccountURL == "" || res.CertURL == "" {
				t.Errorf("result = CA %q account %q cert %q; want CA %q and both URLs set", res.CA, res.AccountURL, res.CertURL, env.ca.DirectoryURL())
			}
			if got := env.ca.NewOrders(); got != 1 {
				t.Errorf("orders placed = %d, want 1", got)
			}
			env.http01.checkCleanedUp(t)
		})
	}
}

func TestAccountCreatedOnceAndReused(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	store := newMemAccounts()
	withStore := func(c *acmeissuer.Config) { c.Accounts = store }

	// Two issuers (two instances) race to create the account.
	var wg sync.WaitGroup
	results := make([]certfleet.IssueResult, 2)
	for n := range results {
		iss := env.newTestIssuer(t, withStore)
		wg.Go(func() {
			res, err := iss.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "acct.example"))
			if err != nil {
				t.Errorf("issue %d: %v", n, err)
			}
			results[n] = res
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	stored, err := store.Account(t.Context(), env.ca.DirectoryURL(), certfleet.DefaultAccount)
	if err != nil {
		t.Fatalf("stored account: %v", err)
	}
	if store.creates != 1 {
		t.Errorf("accounts stored = %d, want 1", store.creates)
	}
	for n, res := range results {
		if res.AccountURL != stored.URL {
			t.Errorf("issue %d used account %q, want the stored %q", n, res.AccountURL, stored.URL)
		}
	}
	if want := []string{"mailto:ops@example.org"}; len(stored.Contact) != 1 || stored.Contact[0] != want[0] {
		t.Errorf("contact = %q, want %q", stored.Contact, want)
	}

	// A later issuer (a restart) loads it instead of creating one.
	res := mustIssue(t, env.newTestIssuer(t, withStore), newTestRequest(t, certfleet.ECDSAP256, "acct2.example"))
	if res.AccountURL != stored.URL || store.creates != 1 {
		t.Errorf("after restart: account %q, stored %d; want %q and 1", res.AccountURL, store.creates, stored.URL)
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	errAbort := errors.New("abort after OnOrder")

	tests := []struct {
		name string
		// first runs the interrupted attempt and returns the order URL to
		// resume and the key to resume with.
		first      func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest)
		wantOrders int64
	}{
		{
			name: "aborted by OnOrder before any challenge",
			first: func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest) {
				var saved string
				req.OnOrder = func(_ context.Context, u string) error { saved = u; return errAbort }
				_, err := iss.Issue(t.Context(), req)
				if !errors.Is(err, errAbort) {
					t.Fatalf("first issue: err = %v, want the OnOrder error", err)
				}
				if env.http01.presents != 0 {
					t.Errorf("challenges presented before OnOrder returned: %d", env.http01.presents)
				}
				return saved, req
			},
			wantOrders: 1,
		},
		{
			name: "cancelled while the CA validates",
			first: func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest) {
				// Cancel a while after the CA's first fetch, once all its
				// perspectives have their answers, while we still sleep
				// before the first poll: the order is left ready.
				iss = env.newTestIssuer(t, func(c *acmeissuer.Config) { c.PollInterval = 3 * time.Second })
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var saved string
				req.OnOrder = func(_ context.Context, u string) error { saved = u; return nil }
				var once sync.Once
				env.http01.mu.Lock()
				env.http01.onServe = func(string) { once.Do(func() { time.AfterFunc(time.Second, cancel) }) }
				env.http01.mu.Unlock()
				_, err := iss.Issue(ctx, req)
				env.http01.mu.Lock()
				env.http01.onServe = nil
				env.http01.mu.Unlock()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("first issue: err = %v, want context.Canceled", err)
				}
				env.http01.checkCleanedUp(t)
				return saved, req
			},
			wantOrders: 1,
		},
		{
			name: "cancelled while the CA validates two names",
			first: func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest) {
				// The cancellation's cleanup may remove the second token
				// before the CA fetched it: then the resumed order fails
				// on a challenge answered before, and a new order follows.
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var saved string
				req.OnOrder = func(_ context.Context, u string) error { saved = u; return nil }
				env.http01.mu.Lock()
				env.http01.onServe = func(string) { cancel() }
				env.http01.mu.Unlock()
				_, err := iss.Issue(ctx, req)
				env.http01.mu.Lock()
				env.http01.onServe = nil
				env.http01.mu.Unlock()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("first issue: err = %v, want context.Canceled", err)
				}
				return saved, req
			},
			wantOrders: -1, // one or two
		},
		{
			name: "order already valid",
			first: func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest) {
				res := mustIssue(t, iss, req)
				return res.OrderURL, req
			},
			wantOrders: 1,
		},
		{
			name: "order valid but for another key",
			first: func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest) {
				res := mustIssue(t, iss, req)
				req.Key = mustKey(t, req.KeyType)
				return res.OrderURL, req
			},
			wantOrders: 2,
		},
		{
			name: "order unknown to the CA",
			first: func(t *testing.T, env *testEnv, iss *acmeissuer.Issuer, req certfleet.IssueRequest) (string, certfleet.IssueRequest) {
				u, _ := url.Parse(env.ca.DirectoryURL())
				u.Path = "/my-order/doesnotexist"
				return u.String(), req
			},
			wantOrders: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, pebbleca.Config{})
			iss := env.newTestIssuer(t, nil)
			orderURL, req := tc.first(t, env, iss, newTestRequest(t, certfleet.ECDSAP256, "resume.example", "127.0.0.1"))
			if orderURL == "" {
				t.Fatal("no order URL to resume")
			}
			placed := env.ca.NewOrders()

			req.ResumeOrderURL = orderURL
			var newOrders []string
			req.OnOrder = func(_ context.Context, u string) error { newOrders = append(newOrders, u); return nil }
			res := mustIssue(t, iss, req)
			mustVerify(t, res.ChainPEM, env.ca.Roots(), req)

			if got := env.ca.NewOrders(); tc.wantOrders < 0 && got > 2 || tc.wantOrders >= 0 && got != tc.wantOrders {
				t.Errorf("orders placed in all = %d, want %d", got, tc.wantOrders)
			}
			resumed := env.ca.NewOrders() == placed
			switch {
			case resumed && (res.OrderURL != orderURL || len(newOrders) != 0):
				t.Errorf("resumed: order %q, OnOrder calls %q; want %q and none", res.OrderURL, newOrders, orderURL)
			case !resumed && (len(newOrders) != 1 || newOrders[0] != res.OrderURL):
				t.Errorf("new order: OnOrder calls %q, want [%q]", newOrders, res.OrderURL)
			}
			if env.http01.presents > 0 {
				env.http01.checkCleanedUp(t)
			}
		})
	}
}

func TestValidationFailure(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	env.http01.wrong = true
	iss := env.newTestIssuer(t, nil)
	var orderURL string
	req := newTestRequest(t, certfleet.ECDSAP256, "wrong.example")
	req.OnOrder = func(_ context.Context, u string) error { orderURL = u; return nil }

	_, err := iss.Issue(t.Context(), req)
	if err == nil {
		t.Fatal("issue with a wrong key authorization succeeded")
	}
	var p acme.Problem
	if !errors.As(err, &p) || p.Type != acme.ProblemTypeUnauthorized {
		t.Fatalf("err = %v; want an acme.Problem of type unauthorized", err)
	}
	msg := err.Error()
	for _, want := range []string{"order " + orderURL, `authorization for "wrong.example" (http-01) invalid`, p.Detail} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	// A failed validation is fixed by a person (or the network) and is
	// retried on the normal backoff: it must not be marked permanent.
	if errors.As(err, new(certfleet.ErrNoRetry)) {
		t.Errorf("a failed validation is marked ErrNoRetry: %v", err)
	}
	if got := certfleet.ProblemType(err); got != acme.ProblemTypeUnauthorized {
		t.Errorf("ProblemType = %q, want unauthorized", got)
	}
	if got := certfleet.ErrorCode(err); got != certfleet.EUNAUTHORIZED {
		t.Errorf("ErrorCode = %q, want %q", got, certfleet.EUNAUTHORIZED)
	}
	env.http01.checkCleanedUp(t)
}

func TestRenewalInfo(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	iss := env.newTestIssuer(t, nil)
	req := newTestRequest(t, certfleet.ECDSAP256, "ari.example")
	leaf := mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)

	ri, err := iss.RenewalInfo(t.Context(), leaf)
	if err != nil {
		t.Fatalf("renewal info: %v", err)
	}
	if ri.Start.Before(leaf.NotBefore.Add(-time.Second)) || ri.End.After(leaf.NotAfter.Add(time.Second)) || !ri.Start.Before(ri.End) {
		t.Errorf("window %v – %v is not inside the lifetime %v – %v", ri.Start, ri.End, leaf.NotBefore, leaf.NotAfter)
	}
	if !ri.RetryAfter.After(time.Now()) {
		t.Errorf("RetryAfter = %v, want a future time", ri.RetryAfter)
	}

	// The CA moves the window (as for a revocation): we see the new one.
	start, end := time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
	if err := env.ca.SetRenewalInfo(t.Context(), leaf, start, end); err != nil {
		t.Fatal(err)
	}
	ri, err = iss.RenewalInfo(t.Context(), leaf)
	if err != nil {
		t.Fatalf("renewal info after change: %v", err)
	}
	if !ri.Start.Equal(start) || !ri.End.Equal(end) {
		t.Errorf("window = %v – %v, want %v – %v", ri.Start, ri.End, start, end)
	}
}

func TestRenewalInfoWithoutARI(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	p := newFaultProxy(t, env.ca)
	p.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/dir") {
			return false
		}
		// The proxied directory without renewalInfo: a CA without ARI.
		rec := httptest.NewRecorder()
		p.proxy.ServeHTTP(rec, r)
		var dir map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &dir); err != nil {
			t.Errorf("decode directory: %v", err)
		}
		delete(dir, "renewalInfo")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(dir)
		return true
	})
	iss := p.newTestIssuer(t, env)
	req := newTestRequest(t, certfleet.ECDSAP256, "noari.example")
	leaf := mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)

	_, err := iss.RenewalInfo(t.Context(), leaf)
	if got := certfleet.ErrorCode(err); got != certfleet.ENOTFOUND {
		t.Errorf("RenewalInfo: err = %v (code %q), want code %q", err, got, certfleet.ENOTFOUND)
	}
	// Without ARI, a renewal sends no replaces, so nothing is refused.
	logs := &logRecorder{}
	iss = p.newTestIssuer(t, env, func(c *acmeissuer.Config) { c.Logger = slog.New(logs) })
	for range 2 {
		renew := req
		renew.Replaces = leaf
		mustIssue(t, iss, renew)
	}
	if n := logs.count("the CA refused the replaces field; ordering without it"); n != 0 {
		t.Errorf("replaces refused %d times by a CA without ARI, want 0 (it must not be sent)", n)
	}
}

func TestReplaces(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	logs := &logRecorder{}
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.Logger = slog.New(logs) })
	req := newTestRequest(t, certfleet.ECDSAP256, "replace.example")
	leaf := mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)

	// The first renewal names the old certificate, and Pebble accepts it.
	renew := req
	renew.Replaces = leaf
	mustVerify(t, mustIssue(t, iss, renew).ChainPEM, env.ca.Roots(), renew)
	if n := logs.count("the CA refused the replaces field; ordering without it"); n != 0 {
		t.Fatalf("first renewal: replaces refused %d times, want 0", n)
	}
	// Pebble v2.10.1 marks the old order replaced in a goroutine after the
	// new order turned valid, without a lock that orders it before the
	// next newOrder's check: a data race inside Pebble that -race reports.
	// Give that goroutine time to finish.
	time.Sleep(200 * time.Millisecond)
	// A second renewal of the same certificate is refused as
	// alreadyReplaced (which proves replaces was sent); we order again
	// without it.
	mustVerify(t, mustIssue(t, iss, renew).ChainPEM, env.ca.Roots(), renew)
	if n := logs.count("the CA refused the replaces field; ordering without it"); n != 1 {
		t.Errorf("second renewal: replaces refused %d times, want 1", n)
	}
	if got := env.ca.NewOrders(); got != 3 {
		t.Errorf("orders placed = %d, want 3", got)
	}
}

func TestProfile(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{Profiles: map[string]pebbleca.Profile{
		"classic": {Description: "90 days"},
		"short":   {Description: "ten minutes", ValidityPeriod: 10 * time.Minute},
	}})
	iss := env.newTestIssuer(t, nil)

	tests := []struct {
		profile  string
		lifetime time.Duration
	}{
		{"short", 10 * time.Minute},
		{"classic", 90 * 24 * time.Hour},
	}
	for _, tc := range tests {
		req := newTestRequest(t, certfleet.ECDSAP256, tc.profile+".profile.example")
		req.Spec.Profile = tc.profile
		leaf := mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)
		if got := leaf.NotAfter.Sub(leaf.NotBefore); got < tc.lifetime-time.Minute || got > tc.lifetime+time.Minute {
			t.Errorf("profile %s: lifetime %v, want about %v", tc.profile, got, tc.lifetime)
		}
	}

	req := newTestRequest(t, certfleet.ECDSAP256, "nope.profile.example")
	req.Spec.Profile = "nope"
	before := env.ca.NewOrders()
	_, err := iss.Issue(t.Context(), req)
	if certfleet.ErrorCode(err) != certfleet.EINVALID || !errors.As(err, new(certfleet.ErrNoRetry)) {
		t.Errorf("unknown profile: err = %v, want EINVALID and ErrNoRetry", err)
	}
	if env.ca.NewOrders() != before {
		t.Errorf("an order was placed for an unknown profile")
	}
}

func TestEAB(t *testing.T) {
	t.Parallel()
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	env := newTestEnv(t, pebbleca.Config{RequireEAB: true, EABKeys: map[string]string{kid: hmac}})

	_, err := env.newTestIssuer(t, nil).Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "eab.example"))
	var p acme.Problem
	if !errors.As(err, &p) || p.Type != acme.ProblemTypeExternalAccountRequired {
		t.Fatalf("without EAB: err = %v, want an externalAccountRequired problem", err)
	}
	if !errors.As(err, new(certfleet.ErrNoRetry)) || certfleet.ErrorCode(err) != certfleet.EUNAUTHORIZED {
		t.Errorf("without EAB: err = %v (code %q), want ErrNoRetry with code %q", err, certfleet.ErrorCode(err), certfleet.EUNAUTHORIZED)
	}

	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.EAB = &acmeissuer.EAB{KeyID: kid, HMAC: hmac} })
	req := newTestRequest(t, certfleet.ECDSAP256, "eab.example")
	mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)

	// Another valid-looking key that the CA does not know.
	wrong := env.newTestIssuer(t, func(c *acmeissuer.Config) {
		c.Accounts = newMemAccounts() // a new account, not the one just made
		c.EAB = &acmeissuer.EAB{KeyID: kid, HMAC: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	})
	_, err = wrong.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "eab.example"))
	if err == nil || strings.Contains(err.Error(), "AAAAAAAA") {
		t.Errorf("wrong HMAC: err = %v; want an error that does not quote the key", err)
	}
}

func TestTLSALPN01DualCertificates(t *testing.T) {
	t.Parallel()
	alpn := newTestTLSALPN01(t)
	env := newTestEnv(t, pebbleca.Config{TLSPort: alpn.port})
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) {
		c.Solvers = map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeTLSALPN01: alpn}
	})
	// The RSA and ECDSA certificates of one spec, ordered at once: both
	// orders need a challenge certificate for the same SNI names.
	var wg sync.WaitGroup
	for _, kt := range []certfleet.KeyType{certfleet.RSA2048, certfleet.ECDSAP256} {
		req := newTestRequest(t, kt, "dual.example", "www.dual.example")
		req.Spec.Challenge = certfleet.ChallengeTLSALPN01
		wg.Go(func() {
			res, err := iss.Issue(t.Context(), req)
			if err != nil {
				t.Errorf("issue %s: %v", kt, err)
				return
			}
			mustVerify(t, res.ChainPEM, env.ca.Roots(), req)
		})
	}
	wg.Wait()
	if alpn.maxLive != 1 {
		t.Errorf("challenges presented at once for one name = %d, want 1", alpn.maxLive)
	}
}

func TestCAFailures(t *testing.T) {
	t.Parallel()
	problem := func(status int, typ, detail string, retryAfter string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"type": typ, "detail": detail, "status": status})
		}
	}
	plain := func(status int, retryAfter string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			http.Error(w, "upstream unavailable", status)
		}
	}
	tests := []struct {
		name        string
		fail        func(w http.ResponseWriter, r *http.Request)
		wantCode    string
		wantProblem string
		wantRetryIn time.Duration // 0: no RetryAfterError
	}{
		{"503 plain", plain(503, ""), certfleet.EUNAVAILABLE, "", 0},
		{"503 with Retry-After", plain(503, "120"), certfleet.EUNAVAILABLE, "", 120 * time.Second},
		{"500 serverInternal", problem(500, acme.ProblemTypeServerInternal, "database on fire", ""), certfleet.EUNAVAILABLE, acme.ProblemTypeServerInternal, 0},
		{"429 rateLimited", problem(429, acme.ProblemTypeRateLimited, "too many certificates", "3600"), certfleet.ERATELIMITED, acme.ProblemTypeRateLimited, time.Hour},
		{"rejectedIdentifier", problem(400, acme.ProblemTypeRejectedIdentifier, "policy forbids", ""), certfleet.EINVALID, acme.ProblemTypeRejectedIdentifier, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, pebbleca.Config{})
			p := newFaultProxy(t, env.ca)
			p.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/order-plz" {
					return false
				}
				tc.fail(w, r)
				return true
			})
			iss := p.newTestIssuer(t, env)
			_, err := iss.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "fail.example"))
			if err == nil {
				t.Fatal("issue succeeded through a failing CA")
			}
			if got := certfleet.ErrorCode(err); got != tc.wantCode {
				t.Errorf("ErrorCode = %q, want %q (err: %v)", got, tc.wantCode, err)
			}
			if got := certfleet.ProblemType(err); got != tc.wantProblem {
				t.Errorf("ProblemType = %q, want %q", got, tc.wantProblem)
			}
			if tc.wantProblem != "" {
				var pr acme.Problem
				if !errors.As(err, &pr) || pr.Type != tc.wantProblem {
					t.Errorf("acme.Problem not reachable: %v", err)
				}
			}
			at, ok := certfleet.RetryAfter(err)
			switch {
			case tc.wantRetryIn == 0 && ok:
				t.Errorf("RetryAfter = %v, want none", at)
			case tc.wantRetryIn != 0 && (!ok || at.Before(time.Now().Add(tc.wantRetryIn-time.Minute)) || at.After(time.Now().Add(tc.wantRetryIn+time.Second))):
				t.Errorf("RetryAfter = %v (%t), want about now+%v", at, ok, tc.wantRetryIn)
			}
			if !strings.Contains(err.Error(), "fail.example") {
				t.Errorf("error %q does not name the identifiers", err)
			}
		})
	}

	t.Run("CA unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		iss, err := acmeissuer.New(acmeissuer.Config{
			DirectoryURL: "https://" + addr + "/dir",
			Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: &http01{}},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = iss.Issue(t.Context(), newTestRequest(t, certfleet.ECDSAP256, "down.example"))
		if got := certfleet.ErrorCode(err); got != certfleet.EUNAVAILABLE {
			t.Errorf("ErrorCode = %q, want %q (err: %v)", got, certfleet.EUNAVAILABLE, err)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name the CA", err)
		}
	})
}

// faultProxy is a TLS reverse proxy in front of a test CA that fails on
// cue: while a fault is set, requests it claims get its answer instead of
// the CA's.
type faultProxy struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	mu    sync.Mutex // guards fault
	fault func(w http.ResponseWriter, r *http.Request) bool
}

func newFaultProxy(t *testing.T, ca *pebbleca.CA) *faultProxy {
	t.Helper()
	target, err := url.Parse(ca.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	p := &faultProxy{}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // Pebble builds its URLs from Host: keep them pointing here
		},
		Transport: ca.HTTPClient().Transport,
	}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		f := p.fault
		p.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		p.proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// newTestIssuer returns an Issuer that reaches env's CA through the proxy.
func (p *faultProxy) newTestIssuer(t *testing.T, env *testEnv, edits ...func(*acmeissuer.Config)) *acmeissuer.Issuer {
	t.Helper()
	return env.newTestIssuer(t, func(c *acmeissuer.Config) {
		c.DirectoryURL = p.srv.URL + "/dir"
		c.TrustedRootsPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
		for _, e := range edits {
			e(c)
		}
	})
}

func TestAuthorizationsConcurrently(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	// With a two-second poll interval, ten authorizations polled one after
	// another take twenty seconds or more; polled together, about two.
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) { c.PollInterval = 2 * time.Second })
	names := make([]string, 10)
	for n := range names {
		names[n] = fmt.Sprintf("n%d.concurrent.example", n)
	}
	req := newTestRequest(t, certfleet.ECDSAP256, names...)
	start := time.Now()
	mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("a ten-name order took %v; authorizations are not polled concurrently", d)
	}
}

// waitingSolver records the order of Present, Wait and the CA's fetches.
type waitingSolver struct {
	*http01
	mu     sync.Mutex // guards events
	events []string
}

func (w *waitingSolver) event(e string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
}

func (w *waitingSolver) Present(ctx context.Context, c certfleet.Challenge) error {
	w.event("present")
	return w.http01.Present(ctx, c)
}

func (w *waitingSolver) Wait(ctx context.Context, c certfleet.Challenge) error {
	w.event("wait")
	return nil
}

func TestWaiter(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	s := &waitingSolver{http01: env.http01}
	env.http01.onServe = func(string) { s.event("fetch") }
	iss := env.newTestIssuer(t, func(c *acmeissuer.Config) {
		c.Solvers = map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: s}
	})
	req := newTestRequest(t, certfleet.ECDSAP256, "w1.example", "w2.example", "w3.example")
	mustIssue(t, iss, req)

	s.mu.Lock()
	defer s.mu.Unlock()
	// Every challenge is presented, then waited for, before the CA is told
	// to validate any of them.
	want := []string{"present", "present", "present", "wait", "wait", "wait"}
	if len(s.events) < len(want) || !slices.Equal(s.events[:len(want)], want) {
		t.Errorf("events = %q, want them to start with %q", s.events, want)
	}
	for _, e := range s.events[len(want):] {
		if e != "fetch" {
			t.Errorf("events = %q: %s after the CA started validating", s.events, e)
			break
		}
	}
}

func TestFinalizeNotReady(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, pebbleca.Config{})
	p := newFaultProxy(t, env.ca)
	var refused atomic.Int32
	// A CA that makes the order ready a moment after its last
	// authorization: the first finalize is refused with orderNotReady
	// (RFC 8555 §7.4), and the issuer must poll the order and try again.
	p.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/finalize-order/") || !refused.CompareAndSwap(0, 1) {
			return false
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]any{"type": acme.ProblemTypeOrderNotReady, "detail": "not yet", "status": 403})
		return true
	})
	iss := p.newTestIssuer(t, env)
	req := newTestRequest(t, certfleet.ECDSAP256, "notready.example")
	mustVerify(t, mustIssue(t, iss, req).ChainPEM, env.ca.Roots(), req)
	if refused.Load() != 1 {
		t.Errorf("finalize refusals = %d, want 1", refused.Load())
	}
	if got := env.ca.Finalizations(); got != 1 {
		t.Errorf("finalizations = %d, want 1", got)
	}
}
