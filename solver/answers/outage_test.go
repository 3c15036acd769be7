package answers_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/cutproxy"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/solver/answers"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/certfleet/certfleet/solver/tlsalpn01"
)

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// follow runs a Follower until the test ends and returns a channel that
// receives the count of every copy.
func follow(t *testing.T, c *answers.Cache, s certfleet.ChallengeStore, typ certfleet.ChallengeType) <-chan int {
	t.Helper()
	copied := make(chan int, 100)
	f := &answers.Follower{Cache: c, Store: s, Type: typ, Interval: time.Minute, // notifications only
		Copied: func(n int) {
			select {
			case copied <- n:
			default:
			}
		}}
	ctx, cancel := t.Context(), func() {}
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return copied
}

// waitCopied waits for a copy with want answers.
func waitCopied(t *testing.T, copied <-chan int, want int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		select {
		case n := <-copied:
			if n == want {
				return time.Since(start)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no copy with %d answers within 10 s", want)
		}
	}
}

// waitHeld waits until c holds an answer for key.
func waitHeld(t *testing.T, c *answers.Cache, key string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if _, ok := c.Get(key, time.Now()); ok {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no answer for %q copied within 10 s", key)
		}
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, r http.Handler, token string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://a.example"+http01.PathPrefix+token, nil))
	return rec.Code, rec.Body.String()
}

// TestAnswersThroughStoreOutage: issue 16 finding 3. Two instances share a
// PostgreSQL database; instance B reaches it through a TCP proxy whose line
// is cut, as a database restart cuts it. Answers instance A presented
// before the cut (B copied them when A's NOTIFY arrived) are still given by
// B's http-01 and tls-alpn-01 responders during the cut; before, they
// answered 503 and a failed handshake. A name B never saw still gets the
// store's error (the cut is real). And an answer presented during the cut
// reaches the store once it is back, instead of failing the authorization.
func TestAnswersThroughStoreOutage(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := cutproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	storeA, storeB := openPG(t, dsn), openPG(t, viaProxy.String())

	tokA, tokB := &http01.Tokens{}, &http01.Tokens{}
	alpnA, alpnB := &answers.Cache{}, &answers.Cache{}
	httpSolverA := &http01.Solver{Store: storeA, Tokens: tokA}
	alpnSolverA := &tlsalpn01.Solver{Store: storeA, Answers: alpnA}
	httpB := &http01.Responder{Store: storeB, Tokens: tokB, LookupTimeout: time.Second}
	alpnB2 := &tlsalpn01.Responder{Store: storeB, Answers: alpnB}
	httpCopies := follow(t, tokB, storeB, certfleet.ChallengeHTTP01)
	alpnCopies := follow(t, alpnB, storeB, certfleet.ChallengeTLSALPN01)
	waitCopied(t, httpCopies, 0)
	waitCopied(t, alpnCopies, 0)

	const token, keyAuth = "Tok3n-presented-before-the-cut", "Tok3n-presented-before-the-cut.thumbprint"
	name := certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "alpn.certfleet.test"}
	if err := httpSolverA.Present(t.Context(), certfleet.Challenge{Type: certfleet.ChallengeHTTP01, Token: token, KeyAuthorization: keyAuth,
		Identifier: certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "http.certfleet.test"}}); err != nil {
		t.Fatal(err)
	}
	if err := alpnSolverA.Present(t.Context(), certfleet.Challenge{Type: certfleet.ChallengeTLSALPN01, Token: "t", KeyAuthorization: keyAuth, Identifier: name}); err != nil {
		t.Fatal(err)
	}
	t.Logf("copied on the other instance %v (http-01) after the present, by notification", waitHeld(t, tokB, token).Round(time.Microsecond))
	waitHeld(t, alpnB, name.Value)

	proxy.Cut()
	if code, body := get(t, httpB, token); code != http.StatusOK || body != keyAuth {
		t.Errorf("http-01 during the cut: %d %q, want 200 and the key authorization", code, body)
	}
	if code, _ := get(t, httpB, "never-presented"); code != http.StatusServiceUnavailable {
		t.Errorf("http-01 for an unknown token during the cut: %d, want 503 (the store is unreachable)", code)
	}
	hello := &tls.ClientHelloInfo{ServerName: name.Value, SupportedProtos: []string{tlsalpn01.ALPNProto}}
	cert, err := alpnB2.GetCertificate(hello)
	if err != nil {
		t.Fatalf("tls-alpn-01 during the cut: %v", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(keyAuth))
	var got []byte
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(tlsalpn01.OIDACMEIdentifier) {
			_, _ = asn1.Unmarshal(ext.Value, &got)
		}
	}
	if string(got) != string(sum[:]) {
		t.Errorf("tls-alpn-01 certificate during the cut carries %x, want the digest of the key authorization", got)
	}

	// Presented during the cut (by B, whose store is cut): answered by B
	// at once, and in the store once the line is back.
	httpSolverB := &http01.Solver{Store: storeB, Tokens: tokB}
	time.AfterFunc(1500*time.Millisecond, func() { _ = proxy.Restore() })
	start := time.Now()
	const token2 = "Tok3n-presented-during-the-cut"
	if err := httpSolverB.Present(t.Context(), certfleet.Challenge{Type: certfleet.ChallengeHTTP01, Token: token2, KeyAuthorization: token2 + ".x",
		Identifier: certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "during.certfleet.test"}}); err != nil {
		t.Fatalf("Present during a 1.5 s cut: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("Present returned after %v, before the line was back: was the store cut?", took)
	}
	if tok, err := storeA.Challenge(t.Context(), certfleet.ChallengeHTTP01, token2); err != nil || tok.KeyAuthorization != token2+".x" {
		t.Errorf("token presented during the cut, in the store afterwards: %+v, %v", tok, err)
	}
}

// TestAnswerHandedOverBeforeOutage: issue 16, the extra order of
// BENCHMARKS §13's combined run. Instance A presents a token just before
// the database goes away; instance B's notification of it arrives, but
// the read of the answers it caused never completes (here: B's line to
// the database stalls, then is cut, every time). B must still answer the
// CA from memory: the token comes with its notification. Before, B's
// copy needed that read, and B answered 503 (authorization invalid, a
// second order). A token removed meanwhile is dropped from B's copy the
// same way.
func TestAnswerHandedOverBeforeOutage(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := cutproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	storeA, storeB := openPG(t, dsn), openPG(t, viaProxy.String())

	solverA := &http01.Solver{Store: storeA, Tokens: &http01.Tokens{}}
	tokB := &http01.Tokens{}
	httpB := &http01.Responder{Store: storeB, Tokens: tokB, LookupTimeout: 3 * time.Second}
	copies := follow(t, tokB, storeB, certfleet.ChallengeHTTP01)
	waitCopied(t, copies, 0) // the first list
	waitCopied(t, copies, 0) // the one after LISTEN: B is listening

	proxy.Stall() // B's queries wait from now on; notifications still arrive
	const token, keyAuth = "Tok3n-presented-just-before-the-cut", "Tok3n-presented-just-before-the-cut.thumbprint"
	const gone = "Tok3n-removed-just-before-the-cut"
	chal := func(tok string) certfleet.Challenge {
		return certfleet.Challenge{Type: certfleet.ChallengeHTTP01, Token: tok, KeyAuthorization: tok + ".thumbprint",
			Identifier: certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "late.certfleet.test"}}
	}
	for _, tok := range []string{token, gone} {
		if err := solverA.Present(t.Context(), chal(tok)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for {
		if _, ok := tokB.Get(token, time.Now()); ok {
			t.Logf("token in B's copy %v after A's present returned, without a read", time.Since(start).Round(time.Microsecond))
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("B has no copy of the token 3 s after A presented it (its read of the store stalls)")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := solverA.CleanUp(t.Context(), chal(gone)); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := tokB.Get(gone, time.Now()); !ok {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("B still answers a token A removed 3 s ago")
			break
		}
	}

	proxy.Cut() // the database restarts
	if code, body := get(t, httpB, token); code != http.StatusOK || body != keyAuth {
		t.Errorf("B's http-01 during the cut: %d %q, want 200 and the key authorization", code, body)
	}
	if code, _ := get(t, httpB, gone); code != http.StatusServiceUnavailable {
		t.Errorf("B's http-01 for the removed token during the cut: %d, want 503 (unknown, the store unreachable)", code)
	}

	// Presented by A during B's cut (B hears nothing of it), and asked of
	// B then: answered once B's line is back within the lookup budget,
	// not 503 at once.
	const late = "Tok3n-presented-during-the-cut-of-B"
	if err := solverA.Present(t.Context(), chal(late)); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(500*time.Millisecond, func() { _ = proxy.Restore() })
	start = time.Now()
	if code, body := get(t, httpB, late); code != http.StatusOK || body != late+".thumbprint" {
		t.Errorf("B's http-01 for a token presented during its cut, the line back 0.5 s later: %d %q, want 200 and the key authorization", code, body)
	}
	t.Logf("answered %v after the request, the line back after 0.5 s", time.Since(start).Round(time.Millisecond))

	// The same for tls-alpn-01: a handshake for a name A presents while
	// B is cut completes once B's line is back, instead of failing.
	proxy.Cut()
	alpnA := &tlsalpn01.Solver{Store: storeA, Answers: &answers.Cache{}}
	alpnB := &tlsalpn01.Responder{Store: storeB, Answers: &answers.Cache{}, LookupTimeout: 3 * time.Second}
	lateName := certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "late-alpn.certfleet.test"}
	if err := alpnA.Present(t.Context(), certfleet.Challenge{Type: certfleet.ChallengeTLSALPN01, Token: "t", KeyAuthorization: late + ".alpn", Identifier: lateName}); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(500*time.Millisecond, func() { _ = proxy.Restore() })
	if _, err := alpnB.GetCertificate(&tls.ClientHelloInfo{ServerName: lateName.Value, SupportedProtos: []string{tlsalpn01.ALPNProto}}); err != nil {
		t.Errorf("B's tls-alpn-01 for a name presented during its cut, the line back 0.5 s later: %v, want the validation certificate", err)
	}
}
