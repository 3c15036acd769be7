package acmeissuer_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

var verbose = flag.Bool("acmelog", false, "send issuer and Pebble logs to the test output")

func TestMain(m *testing.M) {
	// Pebble reads its knobs in its constructors (see package pebbleca);
	// t.Setenv would rule out t.Parallel. Nonce rejection stays at
	// Pebble's default 5% to exercise acmez's badNonce retry.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	flag.Parse()
	os.Exit(m.Run())
}

func testLogger(t testing.TB) *slog.Logger {
	if *verbose {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// http01 is a minimal http-01 responder and certfleet.Solver for tests: it
// serves presented key authorizations at /.well-known/acme-challenge/TOKEN
// on a loopback port, the one the test CA dials. The production solvers
// live in solver/.
type http01 struct {
	port int
	srv  *http.Server

	mu       sync.Mutex // guards the fields below
	tokens   map[string]string
	wrong    bool // serve a wrong key authorization
	presents int
	cleanups int
	onServe  func(token string)
}

var _ certfleet.Solver = (*http01)(nil)

func newTestHTTP01(t testing.TB) *http01 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	h := &http01{port: ln.Addr().(*net.TCPAddr).Port, tokens: make(map[string]string)}
	h.srv = &http.Server{Handler: h}
	go h.srv.Serve(ln)
	t.Cleanup(func() { h.srv.Close() })
	return h
}

func (h *http01) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	h.mu.Lock()
	ka, found := h.tokens[token]
	wrong, onServe := h.wrong, h.onServe
	h.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	if wrong {
		ka = "wrong." + ka
	}
	io.WriteString(w, ka)
	if onServe != nil {
		onServe(token)
	}
}

func (h *http01) Present(_ context.Context, c certfleet.Challenge) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.presents++
	h.tokens[c.Token] = c.KeyAuthorization
	return nil
}

func (h *http01) CleanUp(_ context.Context, c certfleet.Challenge) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups++
	delete(h.tokens, c.Token)
	return nil
}

// checkCleanedUp fails unless every presented challenge was cleaned up.
func (h *http01) checkCleanedUp(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.presents == 0 || h.presents != h.cleanups || len(h.tokens) != 0 {
		t.Errorf("presents = %d, cleanups = %d, tokens left = %d; want equal counts and none left", h.presents, h.cleanups, len(h.tokens))
	}
}

// memAccounts is an in-memory certfleet.AccountStore.
type memAccounts struct {
	mu       sync.Mutex // guards accounts, creates
	accounts map[[2]string]certfleet.Account
	creates  int
}

func newMemAccounts() *memAccounts {
	return &memAccounts{accounts: make(map[[2]string]certfleet.Account)}
}

func (m *memAccounts) Account(_ context.Context, ca, name string) (certfleet.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[[2]string{ca, name}]
	if !ok {
		return certfleet.Account{}, certfleet.Errorf(certfleet.ENOTFOUND, "account %q at %s not found", name, ca)
	}
	return a, nil
}

func (m *memAccounts) CreateAccount(_ context.Context, a certfleet.Account) (certfleet.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{a.CA, a.Name}
	if old, ok := m.accounts[k]; ok {
		return old, nil
	}
	m.accounts[k] = a
	m.creates++
	return a, nil
}

// testEnv is a Pebble CA whose validator dials the http01 responder.
type testEnv struct {
	ca       *pebbleca.CA
	http01   *http01
	accounts *memAccounts // shared by the env's issuers unless edited
}

func newTestEnv(t testing.TB, cfg pebbleca.Config) *testEnv {
	t.Helper()
	h := newTestHTTP01(t)
	cfg.HTTPPort = h.port
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ca, err := pebbleca.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() { ca.Close() })
	return &testEnv{ca: ca, http01: h, accounts: newMemAccounts()}
}

// newTestIssuer returns an Issuer for env's CA with the http01 responder
// as the http-01 solver; edit adjusts the config.
func (env *testEnv) newTestIssuer(t testing.TB, edit func(*acmeissuer.Config)) *acmeissuer.Issuer {
	t.Helper()
	cfg := acmeissuer.Config{
		DirectoryURL:    env.ca.DirectoryURL(),
		TrustedRootsPEM: env.ca.TLSRootPEM(),
		Contact:         []string{"ops@example.org"},
		Solvers:         map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: env.http01},
		Accounts:        env.accounts,
		Logger:          testLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	iss, err := acmeissuer.New(cfg)
	if err != nil {
		t.Fatalf("new issuer: %v", err)
	}
	return iss
}

func mustIdentifiers(t testing.TB, values ...string) []certfleet.Identifier {
	t.Helper()
	ids, err := certfleet.ParseIdentifiers(values)
	if err != nil {
		t.Fatalf("parse identifiers: %v", err)
	}
	return ids
}

func mustKey(t testing.TB, kt certfleet.KeyType) crypto.Signer {
	t.Helper()
	k, err := certfleet.GenerateKey(kt)
	if err != nil {
		t.Fatalf("generate %s key: %v", kt, err)
	}
	return k
}

// newTestRequest asks for a certificate of key type kt for names, by
// http-01.
func newTestRequest(t testing.TB, kt certfleet.KeyType, names ...string) certfleet.IssueRequest {
	t.Helper()
	return certfleet.IssueRequest{
		Spec: certfleet.CertificateSpec{
			Name:        "test",
			Identifiers: mustIdentifiers(t, names...),
			KeyTypes:    []certfleet.KeyType{kt},
			Challenge:   certfleet.ChallengeHTTP01,
		},
		KeyType: kt,
		Key:     mustKey(t, kt),
	}
}

func mustIssue(t testing.TB, iss *acmeissuer.Issuer, req certfleet.IssueRequest) certfleet.IssueResult {
	t.Helper()
	res, err := iss.Issue(t.Context(), req)
	if err != nil {
		t.Fatalf("issue %v: %v", certfleet.IdentifierValues(req.Spec.Identifiers), err)
	}
	return res
}

// mustVerify checks that chainPEM chains to roots, is for req's key and
// names exactly req's identifiers, and returns the leaf.
func mustVerify(t testing.TB, chainPEM []byte, roots *x509.CertPool, req certfleet.IssueRequest) *x509.Certificate {
	t.Helper()
	certs, err := certfleet.ParseChain(chainPEM)
	if err != nil {
		t.Fatalf("parse chain: %v", err)
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("verify chain: %v", err)
	}
	var got []string
	got = append(got, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		got = append(got, ip.String())
	}
	want := certfleet.IdentifierValues(req.Spec.Identifiers)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("certificate names = %q, want %q", got, want)
	}
	kt, err := certfleet.KeyTypeOf(leaf.PublicKey)
	if err != nil || kt != req.KeyType {
		t.Errorf("certificate key type = %s (%v), want %s", kt, err, req.KeyType)
	}
	return leaf
}

// logRecorder is a slog handler that keeps messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// tlsALPN01 is a minimal tls-alpn-01 responder and Solver (RFC 8737): it
// keeps ONE challenge certificate per name, as a responder keyed by SNI
// must, and records how many challenges for one name were presented at
// once.
type tlsALPN01 struct {
	port int

	mu      sync.Mutex // guards the fields below
	certs   map[string]*tls.Certificate
	live    map[string]int
	maxLive int
}

func newTestTLSALPN01(t testing.TB) *tlsALPN01 {
	t.Helper()
	s := &tlsALPN01{certs: make(map[string]*tls.Certificate), live: make(map[string]int)}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		NextProtos: []string{acmez.ACMETLS1Protocol},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if c := s.certs[hello.ServerName]; c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("no challenge for %q", hello.ServerName)
		},
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *tlsALPN01) Present(_ context.Context, c certfleet.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(acme.Challenge{
		Identifier:       acme.Identifier{Type: string(c.Identifier.Type), Value: c.Identifier.Value},
		KeyAuthorization: c.KeyAuthorization,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs[c.Identifier.Value] = cert
	s.live[c.Identifier.Value]++
	s.maxLive = max(s.maxLive, s.live[c.Identifier.Value])
	return nil
}

func (s *tlsALPN01) CleanUp(_ context.Context, c certfleet.Challenge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.certs, c.Identifier.Value)
	s.live[c.Identifier.Value]--
	return nil
}

// portOf returns the port of a URL's host.
func portOf(t testing.TB, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
