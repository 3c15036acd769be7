package dns01_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
	"github.com/certfleet/certfleet/solver/dns01/rfc2136"
)

func TestMain(m *testing.M) {
	// Pebble reads its knobs in its constructors; t.Setenv would rule out
	// t.Parallel.
	if os.Getenv(hookEnv) != "" {
		os.Exit(runHook())
	}
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

const keyName = "certfleet-test."

// env is a test network: one primary DNS server holding example.test,
// delegate.test and lag.test (also answering as the resolver, chasing
// CNAMEs like a recursive resolver for Pebble), a lagging secondary of
// lag.test on 127.0.0.2, and a Pebble CA that resolves through the
// primary.
type env struct {
	primary, secondary *dnstest.Server
	secret             string
	ca                 *pebbleca.CA
	resolver           *dns01.Resolver
}

func newTSIGSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func newEnv(t *testing.T, lag time.Duration) *env {
	t.Helper()
	e := &env{secret: newTSIGSecret(t)}
	var err error
	for range 20 {
		e.primary, err = dnstest.Start("127.0.0.1", "0", map[string]string{keyName: e.secret})
		if err != nil {
			t.Fatal(err)
		}
		e.secondary, err = dnstest.Start("127.0.0.2", e.primary.Port(), nil)
		if err == nil {
			break
		}
		e.primary.Close()
	}
	if err != nil {
		t.Fatalf("start secondary on 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { e.primary.Close(); e.secondary.Close() })
	e.primary.ChaseCNAME = true
	e.primary.AddZone("example.test", "ns1.example.test")
	e.primary.AddZone("delegate.test", "ns1.example.test")
	e.primary.AddZone("lag.test", "ns1.lag.test", "ns2.lag.test")
	e.primary.Add(
		"ns1.example.test. 60 IN A 127.0.0.1",
		"ns1.lag.test. 60 IN A 127.0.0.1",
		"ns2.lag.test. 60 IN A 127.0.0.2",
		"_acme-challenge.app.example.test. 60 IN CNAME app.delegate.test.",
		"_acme-challenge.loop.example.test. 60 IN CNAME loop2.example.test.",
		"loop2.example.test. 60 IN CNAME _acme-challenge.loop.example.test.",
		"_acme-challenge.dangling.example.test. 60 IN CNAME x.nowhere.invalid.",
	)
	e.secondary.AddZone("lag.test", "ns1.lag.test", "ns2.lag.test")
	e.primary.AddSecondary(e.secondary, lag)
	e.resolver = &dns01.Resolver{Nameservers: []string{e.primary.Addr()}, AuthPort: e.primary.Port(), Timeout: 2 * time.Second}

	e.ca, err = pebbleca.Start(t.Context(), pebbleca.Config{ResolverAddr: e.primary.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ca.Close() })
	return e
}

func (e *env) provider(secret string) *rfc2136.Provider {
	return &rfc2136.Provider{KeyName: keyName, Algorithm: "hmac-sha256", Secret: secret, Resolver: e.resolver}
}

func (e *env) solver(p dns01.Provider) *dns01.Solver {
	return &dns01.Solver{
		Providers:          map[string]dns01.Provider{"main": p},
		DefaultProvider:    "main",
		Resolver:           e.resolver,
		PropagationTimeout: 20 * time.Second,
		PollInterval:       50 * time.Millisecond,
		MaxPollInterval:    200 * time.Millisecond,
	}
}

func (e *env) issue(t *testing.T, s certfleet.Solver, names ...string) error {
	t.Helper()
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: e.ca.DirectoryURL(),
		HTTPClient:   e.ca.HTTPClient(),
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeDNS01: s},
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := certfleet.ParseIdentifiers(names)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	res, err := iss.Issue(ctx, certfleet.IssueRequest{
		Spec: certfleet.CertificateSpec{Name: "t", Identifiers: ids, KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256},
			Challenge: certfleet.ChallengeDNS01},
		KeyType: certfleet.ECDSAP256, Key: key,
	})
	if err == nil && len(res.ChainPEM) == 0 {
		return errors.New("no chain")
	}
	return err
}

func TestIssue(t *testing.T) {
	e := newEnv(t, 0)
	for _, tc := range []struct {
		name  string
		names []string
		// where the records must have been written
		written []string
		// where no record may ever have been written
		untouched []string
	}{
		{"plain zone", []string{"www.example.test"}, []string{"_acme-challenge.www.example.test"}, nil},
		{"wildcard and apex: two values at one name", []string{"*.example.test", "example.test"}, []string{"_acme-challenge.example.test"}, nil},
		{"CNAME delegation into another zone", []string{"app.example.test"}, []string{"app.delegate.test"}, []string{"_acme-challenge.app.example.test"}},
		{"two authoritative servers", []string{"a.lag.test", "b.lag.test"}, []string{"_acme-challenge.a.lag.test", "_acme-challenge.b.lag.test"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.solver(e.provider(e.secret))
			if err := e.issue(t, s, tc.names...); err != nil {
				t.Fatalf("issue %v: %v", tc.names, err)
			}
			for _, n := range tc.written {
				if e.primary.Applied(n) == 0 {
					t.Errorf("no TXT record was ever written at %s", n)
				}
				if got := e.primary.TXT(n); len(got) != 0 {
					t.Errorf("TXT at %s after cleanup = %q, want none", n, got)
				}
			}
			for _, n := range tc.untouched {
				if got := e.primary.Applied(n); got != 0 {
					t.Errorf("%d TXT records were written at %s, want none (the CNAME's target holds them)", got, n)
				}
			}
		})
	}
	if got := e.secondary.TXT("_acme-challenge.a.lag.test"); len(got) != 0 {
		t.Errorf("secondary still serves %q after cleanup", got)
	}
}

// timedSolver records when each Wait returned.
type timedSolver struct {
	*dns01.Solver
	mu       sync.Mutex
	returned map[string]time.Time // identifier → when Wait returned
	values   map[string]string    // identifier → TXT value
}

func (s *timedSolver) Present(ctx context.Context, c certfleet.Challenge) error {
	s.mu.Lock()
	s.values[c.Identifier.Value] = dns01.RecordValue(c.KeyAuthorization)
	s.mu.Unlock()
	return s.Solver.Present(ctx, c)
}

func (s *timedSolver) Wait(ctx context.Context, c certfleet.Challenge) error {
	err := s.Solver.Wait(ctx, c)
	s.mu.Lock()
	s.returned[c.Identifier.Value] = time.Now()
	s.mu.Unlock()
	return err
}

// TestPropagationWaitsForLaggingServer: the secondary gets the record 1.5 s
// after the primary; Wait must return only after the secondary has it.
func TestPropagationWaitsForLaggingServer(t *testing.T) {
	const lag = 1500 * time.Millisecond
	e := newEnv(t, lag)
	s := &timedSolver{Solver: e.solver(e.provider(e.secret)), returned: map[string]time.Time{}, values: map[string]string{}}
	start := time.Now()
	if err := e.issue(t, s, "x.lag.test", "y.lag.test"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"x.lag.test", "y.lag.test"} {
		name := "_acme-challenge." + n
		applied := e.secondary.AppliedAt(name, s.values[n])
		primaryAt := e.primary.AppliedAt(name, s.values[n])
		if applied.IsZero() || primaryAt.IsZero() {
			t.Fatalf("%s: record never reached the primary (%v) or the secondary (%v)", n, primaryAt, applied)
		}
		returned := s.returned[n]
		if returned.Before(applied) {
			t.Errorf("%s: Wait returned at +%v, before the lagging secondary had the record (+%v)", n, returned.Sub(start), applied.Sub(start))
		}
		if d := applied.Sub(primaryAt); d < lag-100*time.Millisecond {
			t.Errorf("%s: secondary lagged only %v, want %v: the test does not test anything", n, d, lag)
		}
		t.Logf("%s: primary +%v, secondary +%v, Wait returned +%v", n, primaryAt.Sub(start), applied.Sub(start), returned.Sub(start))
	}
}

// TestPropagationTimeout names the server that never got the record.
func TestPropagationTimeout(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.solver(e.provider(e.secret))
	s.PropagationTimeout = 500 * time.Millisecond
	chal := certfleet.Challenge{Type: certfleet.ChallengeDNS01, Identifier: certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "slow.lag.test"},
		Token: "tok", KeyAuthorization: "tok.thumb", URL: "https://ca/chal/1"}
	ctx := t.Context()
	if err := s.Present(ctx, chal); err != nil {
		t.Fatal(err)
	}
	defer s.CleanUp(ctx, chal)
	err := s.Wait(ctx, chal)
	if !errors.Is(err, dns01.ErrPropagation) {
		t.Fatalf("Wait = %v, want ErrPropagation", err)
	}
	if !strings.Contains(err.Error(), "ns2.lag.test (127.0.0.2:") || strings.Contains(err.Error(), "ns1.lag.test") {
		t.Errorf("error %q should name ns2.lag.test only", err)
	}
}

func TestWrongTSIGSecret(t *testing.T) {
	e := newEnv(t, 0)
	s := e.solver(e.provider(newTSIGSecret(t)))
	ids, _ := certfleet.ParseIdentifiers([]string{"www.example.test"})
	err := s.Preflight(t.Context(), ids)
	if err == nil {
		t.Fatal("Preflight with a wrong TSIG secret succeeded")
	}
	for _, want := range []string{"rejected TSIG key " + keyName, "NOTAUTH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got := e.ca.NewOrders(); got != 0 {
		t.Errorf("NewOrders = %d, want 0", got)
	}
	if err := s.Preflight(t.Context(), ids); err == nil {
		t.Error("a failed preflight was remembered as a success")
	}
	good := e.solver(e.provider(e.secret))
	if err := good.Preflight(t.Context(), ids); err != nil {
		t.Errorf("Preflight with the right secret: %v", err)
	}
	if n := e.primary.Updates(); n != 1 {
		t.Errorf("primary accepted %d updates, want 1 (the right key's no-op check)", n)
	}
}

func TestLocate(t *testing.T) {
	e := newEnv(t, 0)
	s := e.solver(e.provider(e.secret))
	for _, tc := range []struct {
		domain, fqdn, zone, err string
	}{
		{"www.example.test", "_acme-challenge.www.example.test.", "example.test.", ""},
		{"*.Example.TEST", "_acme-challenge.example.test.", "example.test.", ""},
		{"app.example.test", "app.delegate.test.", "delegate.test.", ""},
		{"deep.sub.lag.test", "_acme-challenge.deep.sub.lag.test.", "lag.test.", ""},
		{"loop.example.test", "", "", "CNAME loop"},
		{"dangling.example.test", "", "", "points into no zone"},
		{"www.unknown.invalid", "", "", "no zone holds _acme-challenge.www.unknown.invalid."},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			rec, chain, err := s.Locate(t.Context(), tc.domain)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Locate = %+v, %v; want error containing %q", rec, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.FQDN != tc.fqdn || rec.Zone != tc.zone {
				t.Errorf("Locate = %s in %s (chain %v), want %s in %s", rec.FQDN, rec.Zone, chain, tc.fqdn, tc.zone)
			}
		})
	}
}

func TestRecordValue(t *testing.T) {
	// Computed independently: printf a.b | openssl dgst -sha256 -binary
	// | base64 | tr '+/' '-_' | tr -d =
	if got, want := dns01.RecordValue("a.b"), "LnM23I66h-9HLfVow1SCq_JXXcPl6sDFxiuP-urCyTQ"; got != want {
		t.Errorf("RecordValue(a.b) = %s, want %s", got, want)
	}
	if got := dns01.RecordName("*.Example.org"); got != "_acme-challenge.example.org." {
		t.Errorf("RecordName = %s", got)
	}
}
