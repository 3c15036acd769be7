package http01_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"os"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/solver/http01"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

func TestMain(m *testing.M) {
	// Pebble reads its knobs in its constructors; t.Setenv would rule out
	// t.Parallel.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

// acmezSolver lets acmez's porcelain drive a certfleet.Solver.
type acmezSolver struct{ s certfleet.Solver }

func convert(c acme.Challenge) certfleet.Challenge {
	return certfleet.Challenge{
		Type:             certfleet.ChallengeType(c.Type),
		Identifier:       certfleet.Identifier{Type: certfleet.IdentifierType(c.Identifier.Type), Value: c.Identifier.Value},
		Token:            c.Token,
		KeyAuthorization: c.KeyAuthorization,
		URL:              c.URL,
	}
}

func (a acmezSolver) Present(ctx context.Context, c acme.Challenge) error {
	return a.s.Present(ctx, convert(c))
}

func (a acmezSolver) CleanUp(ctx context.Context, c acme.Challenge) error {
	return a.s.CleanUp(ctx, convert(c))
}

// TestPebbleValidates has Pebble's real validator check our responder, for a
// DNS name and an IP address.
func TestPebbleValidates(t *testing.T) {
	store := newMemStore()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tokens := new(http01.Tokens)
	go func() { done <- (&http01.Responder{Store: store, Tokens: tokens}).Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })

	client := &acmez.Client{
		Client: &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), PollInterval: 50 * time.Millisecond},
		ChallengeSolvers: map[string]acmez.Solver{
			acme.ChallengeTypeHTTP01: acmezSolver{&http01.Solver{Store: store, Tokens: tokens}},
		},
	}
	accountKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	octx, ocancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer ocancel()
	acct, err := client.NewAccount(octx, acme.Account{PrivateKey: accountKey, TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certs, err := client.ObtainCertificateForSANs(octx, acct, certKey, []string{"http.example", "127.0.0.1"})
	if err != nil {
		t.Fatalf("obtain: %v", err)
	}
	if len(certs) == 0 {
		t.Fatal("no certificate")
	}
	if store.Len() != 0 {
		t.Errorf("%d challenges left in the store after CleanUp", store.Len())
	}
}
