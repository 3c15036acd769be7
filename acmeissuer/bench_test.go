package acmeissuer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

// benchConcurrency keeps Pebble at 16 orders in flight: it wedges above
// that (see package pebbleca).
const benchConcurrency = 16

// benchPollInterval is given to both clients.
const benchPollInterval = 100 * time.Millisecond

// BenchmarkIssue compares this Issuer with acmez's porcelain
// (ObtainCertificateForSANs) on the same kind of in-process Pebble, with
// the same poll interval and real http-01 over loopback. Each iteration
// issues a batch of ECDSA P-256 certificates, benchConcurrency at a time:
// 100 single-name ones, 20 of ten names each, and one of ten names (the
// latency of one order, where polling authorizations concurrently shows).
// Run with -benchtime=1x (or 3x); each batch is bounded to two minutes.
//
//	go test -run '^$' -bench Issue -benchtime 1x ./acmeissuer/
func BenchmarkIssue(b *testing.B) {
	batches := []struct{ certs, names int }{
		{100, 1},
		{20, 10},
		{1, 10},
	}
	clients := []struct {
		name string
		new  func(b *testing.B, env *testEnv) func(ctx context.Context, names []string) error
	}{
		{"certfleet", newBenchCertfleet},
		{"acmez", newBenchAcmez},
	}
	for _, batch := range batches {
		for _, c := range clients {
			b.Run(fmt.Sprintf("%s/%dx%dnames", c.name, batch.certs, batch.names), func(b *testing.B) {
				env := newTestEnv(b, pebbleca.Config{})
				issue := c.new(b, env)
				var round atomic.Int64
				var total time.Duration
				for b.Loop() {
					r := round.Add(1)
					ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
					start := time.Now()
					err := runBatch(ctx, batch.certs, func(ctx context.Context, k int) error {
						names := make([]string, batch.names)
						for n := range names {
							names[n] = fmt.Sprintf("n%d.c%d.r%d.bench.example", n, k, r)
						}
						return issue(ctx, names)
					})
					cancel()
					if err != nil {
						b.Fatalf("batch: %v", err)
					}
					total += time.Since(start)
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "s/batch")
				b.ReportMetric(float64(env.ca.NewOrders())/float64(b.N), "orders/batch")
			})
		}
	}
}

// runBatch runs f(0..n-1) with benchConcurrency in flight.
func runBatch(ctx context.Context, n int, f func(ctx context.Context, k int) error) error {
	sem := make(chan struct{}, benchConcurrency)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for k := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, k); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("certificate %d: %w", k, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func newBenchCertfleet(b *testing.B, env *testEnv) func(ctx context.Context, names []string) error {
	iss := env.newTestIssuer(b, func(c *acmeissuer.Config) { c.PollInterval = benchPollInterval })
	return func(ctx context.Context, names []string) error {
		req := newTestRequest(b, certfleet.ECDSAP256, names...)
		_, err := iss.Issue(ctx, req)
		return err
	}
}

func newBenchAcmez(b *testing.B, env *testEnv) func(ctx context.Context, names []string) error {
	client := &acmez.Client{
		Client: &acme.Client{
			Directory:    env.ca.DirectoryURL(),
			HTTPClient:   env.ca.HTTPClient(),
			PollInterval: benchPollInterval,
		},
		ChallengeSolvers: map[string]acmez.Solver{acme.ChallengeTypeHTTP01: acmezSolver{env.http01}},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	acct, err := client.NewAccount(b.Context(), acme.Account{PrivateKey: key, TermsOfServiceAgreed: true})
	if err != nil {
		b.Fatalf("acmez account: %v", err)
	}
	return func(ctx context.Context, names []string) error {
		certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		_, err = client.ObtainCertificateForSANs(ctx, acct, certKey, names)
		return err
	}
}

// acmezSolver adapts the test responder to acmez's Solver.
type acmezSolver struct{ h *http01 }

func (s acmezSolver) Present(ctx context.Context, c acme.Challenge) error {
	return s.h.Present(ctx, certfleet.Challenge{Token: c.Token, KeyAuthorization: c.KeyAuthorization})
}

func (s acmezSolver) CleanUp(ctx context.Context, c acme.Challenge) error {
	return s.h.CleanUp(ctx, certfleet.Challenge{Token: c.Token})
}
