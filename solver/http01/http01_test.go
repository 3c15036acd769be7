package http01_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/solvertest"
	"github.com/certfleet/certfleet/solver/http01"
)

const (
	testToken   = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	testKeyAuth = testToken + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
)

func testChallenge(token, keyAuth string) certfleet.Challenge {
	return certfleet.Challenge{
		Type:             certfleet.ChallengeHTTP01,
		Identifier:       certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "example.org"},
		Token:            token,
		KeyAuthorization: keyAuth,
	}
}

// newTestResponder serves r on a loopback port until the test ends and
// returns its base URL.
func newTestResponder(t *testing.T, r *http01.Responder) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// mustGet fetches url with the given Host header and returns status and body.
func mustGet(t *testing.T, url, host string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestPresentServeCleanUp(t *testing.T) {
	for _, tc := range []struct {
		name        string
		shareLocal  bool
		wantLookups bool // whether the answer needs the store
	}{
		{name: "through store", shareLocal: false, wantLookups: true},
		{name: "local fast path", shareLocal: true, wantLookups: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := solvertest.NewMemStore()
			solver := &http01.Solver{Store: store}
			resp := &http01.Responder{Store: store}
			if tc.shareLocal {
				tokens := new(http01.Tokens)
				solver.Tokens, resp.Tokens = tokens, tokens
			}
			base := newTestResponder(t, resp)
			chal := testChallenge(testToken, testKeyAuth)
			url := base + http01.PathPrefix + testToken

			if code, _, _ := mustGet(t, url, ""); code != http.StatusNotFound {
				t.Fatalf("before Present: status %d, want 404", code)
			}
			if err := solver.Present(t.Context(), chal); err != nil {
				t.Fatalf("Present: %v", err)
			}
			before := store.Lookups()
			// The Host header is ignored: any name may be proxied to us.
			for _, host := range []string{"", "example.org", "other.example"} {
				code, body, hdr := mustGet(t, url, host)
				if code != http.StatusOK || body != testKeyAuth {
					t.Fatalf("host %q: got %d %q, want 200 %q", host, code, body, testKeyAuth)
				}
				if got := hdr.Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("Content-Type %q, want application/octet-stream", got)
				}
			}
			if got := store.Lookups() > before; got != tc.wantLookups {
				t.Errorf("store consulted: %v, want %v", got, tc.wantLookups)
			}

			if err := solver.CleanUp(t.Context(), chal); err != nil {
				t.Fatalf("CleanUp: %v", err)
			}
			if code, _, _ := mustGet(t, url, ""); code != http.StatusNotFound {
				t.Fatalf("after CleanUp: status %d, want 404", code)
			}
			if store.Len() != 0 {
				t.Errorf("store holds %d tokens after CleanUp, want 0", store.Len())
			}
			// CleanUp is idempotent.
			if err := solver.CleanUp(t.Context(), chal); err != nil {
				t.Fatalf("second CleanUp: %v", err)
			}
		})
	}
}

func TestTokenFromAnotherInstance(t *testing.T) {
	store := solvertest.NewMemStore()
	// This instance presented nothing itself, but shares the store.
	resp := &http01.Responder{Store: store, Tokens: new(http01.Tokens)}
	base := newTestResponder(t, resp)
	err := store.PutChallenge(t.Context(), certfleet.ChallengeToken{
		Type: certfleet.ChallengeHTTP01, Key: testToken, KeyAuthorization: testKeyAuth,
		Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := mustGet(t, base+http01.PathPrefix+testToken, "example.org")
	if code != http.StatusOK || body != testKeyAuth {
		t.Fatalf("got %d %q, want 200 %q", code, body, testKeyAuth)
	}
}

func TestExpiredTokenNotServed(t *testing.T) {
	store := solvertest.NewMemStore()
	tokens := new(http01.Tokens)
	now := time.Now()
	clock := func() time.Time { return now }
	solver := &http01.Solver{Store: store, Tokens: tokens, TTL: time.Minute, Now: clock}
	if err := solver.Present(t.Context(), testChallenge(testToken, testKeyAuth)); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return now.Add(2 * time.Minute) }
	// The store's own clock says the token is still valid; the local cache
	// must not answer past its expiry, and falls back to the store.
	resp := &http01.Responder{Tokens: tokens, Now: later}
	base := newTestResponder(t, resp)
	if code, _, _ := mustGet(t, base+http01.PathPrefix+testToken, ""); code != http.StatusNotFound {
		t.Fatalf("expired local token: status %d, want 404", code)
	}
}

func TestBadRequestsNeverReachStore(t *testing.T) {
	store := solvertest.NewMemStore()
	base := newTestResponder(t, &http01.Responder{Store: store})
	for _, tc := range []struct {
		name string
		path string
		want int
	}{
		{name: "dot", path: http01.PathPrefix + "abc.def", want: 404},
		{name: "padding", path: http01.PathPrefix + "abc=", want: 404},
		{name: "encoded slash", path: http01.PathPrefix + "..%2F..%2Fetc%2Fpasswd", want: 404},
		{name: "percent", path: http01.PathPrefix + "abc%25", want: 404},
		{name: "space", path: http01.PathPrefix + "a%20b", want: 404},
		{name: "empty token", path: http01.PathPrefix, want: 404},
		{name: "subdirectory", path: http01.PathPrefix + "a/b", want: 404},
		{name: "too long", path: http01.PathPrefix + strings.Repeat("a", 300), want: 404},
		{name: "other path", path: "/index.html", want: 404},
		{name: "prefix without slash", path: "/.well-known/acme-challenge", want: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, _ := mustGet(t, base+tc.path, "")
			if code != tc.want {
				t.Errorf("GET %s: status %d, want %d", tc.path, code, tc.want)
			}
		})
	}
	if n := store.Lookups(); n != 0 {
		t.Errorf("store was queried %d times for malformed requests, want 0", n)
	}
}

func TestFallback(t *testing.T) {
	store := solvertest.NewMemStore()
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
	base := newTestResponder(t, &http01.Responder{Store: store, Fallback: fallback})

	code, _, hdr := mustGet(t, base+"/page?q=1", "example.org")
	if code != http.StatusMovedPermanently || hdr.Get("Location") != "https://example.org/page?q=1" {
		t.Errorf("other path: got %d Location %q, want 301 to https://example.org/page?q=1", code, hdr.Get("Location"))
	}
	// Unknown tokens under the challenge prefix are never handed to Fallback.
	if code, _, _ := mustGet(t, base+http01.PathPrefix+testToken, "example.org"); code != http.StatusNotFound {
		t.Errorf("unknown token with fallback: status %d, want 404", code)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	base := newTestResponder(t, &http01.Responder{Store: solvertest.NewMemStore()})
	resp, err := http.Post(base+http01.PathPrefix+testToken, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

func TestPresentRejects(t *testing.T) {
	store := solvertest.NewMemStore()
	solver := &http01.Solver{Store: store}
	for _, tc := range []struct {
		name string
		chal certfleet.Challenge
	}{
		{name: "path traversal token", chal: testChallenge("../../etc/passwd", "x")},
		{name: "empty token", chal: testChallenge("", "x")},
		{name: "wrong type", chal: func() certfleet.Challenge {
			c := testChallenge(testToken, testKeyAuth)
			c.Type = certfleet.ChallengeDNS01
			return c
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := solver.Present(t.Context(), tc.chal)
			if got := certfleet.ErrorCode(err); got != certfleet.EINVALID {
				t.Errorf("Present: code %q (%v), want %q", got, err, certfleet.EINVALID)
			}
		})
	}
	if store.Len() != 0 {
		t.Errorf("store holds %d tokens, want 0", store.Len())
	}
}

func TestValidToken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{testToken, true},
		{"a-b_c", true},
		{"", false},
		{"a.b", false},
		{"a/b", false},
		{"a=", false},
		{"a+b", false},
		{"ä", false},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
	} {
		if got := http01.ValidToken(tc.in); got != tc.want {
			t.Errorf("ValidToken(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- (&http01.Responder{Store: solvertest.NewMemStore()}).Serve(ctx, ln) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}
