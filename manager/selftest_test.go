package manager_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/sqlite"
)

// stuckTester's self-test lasts until its context ends.
type stuckTester struct{ started chan struct{} }

func (s stuckTester) SelfTest(ctx context.Context, _ certfleet.CertificateSpec, _ []certfleet.Identifier) ([]certfleet.SelfTestResult, error) {
	close(s.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

type countingIssuer struct{ n atomic.Int64 }

func (c *countingIssuer) Issue(context.Context, certfleet.IssueRequest) (certfleet.IssueResult, error) {
	c.n.Add(1)
	return certfleet.IssueResult{}, errors.New("no orders here")
}

// TestSelfTestShutdownPlacesNoOrder (issue 14): a shutdown during a
// self-test places no order (selftestbench found the gate ordering "without
// the self-test" when its context ended).
func TestSelfTestShutdownPlacesNoOrder(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sp := spec(t, "w", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "w.example.org")
	sp.Source = certfleet.SourceConfig
	if _, err := store.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{sp}); err != nil {
		t.Fatal(err)
	}
	iss := &countingIssuer{}
	tester := stuckTester{started: make(chan struct{})}
	m := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss}, SelfTester: tester, Logger: testLogger(t)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-tester.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the self-test never started")
	}
	cancel()
	<-done
	if n := iss.n.Load(); n != 0 {
		t.Fatalf("%d orders placed during the shutdown, want 0", n)
	}
}
