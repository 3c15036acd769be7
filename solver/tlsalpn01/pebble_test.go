package tlsalpn01_test

import (
	"context"
	"net"
	"os"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/internal/solvertest"
	"github.com/certfleet/certfleet/solver/tlsalpn01"
)

func TestMain(m *testing.M) {
	// Pebble reads its knobs in its constructors; t.Setenv would rule out
	// t.Parallel.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

// TestPebbleValidates has Pebble's real validator check our responder, for a
// DNS name and an IP address (RFC 8738 reverse-name SNI).
func TestPebbleValidates(t *testing.T) {
	store := solvertest.NewMemStore()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&tlsalpn01.Responder{Store: store}).Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{TLSPort: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })

	solvertest.Obtain(t, ca, acme.ChallengeTypeTLSALPN01, &tlsalpn01.Solver{Store: store}, "alpn.example", "127.0.0.1")
	if store.Len() != 0 {
		t.Errorf("%d challenges left in the store after CleanUp", store.Len())
	}
}
