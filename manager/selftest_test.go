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

// refusingTester fails the self-test of one name and passes the others.
type refusingTester struct{ refuse string }

func (r refusingTester) SelfTest(_ context.Context, _ certfleet.CertificateSpec, ids []certfleet.Identifier) ([]certfleet.SelfTestResult, error) {
	out := make([]certfleet.SelfTestResult, len(ids))
	for i, id := range ids {
		out[i].Identifier = id
		if id.Value == r.refuse {
			out[i].Code, out[i].Reason = certfleet.WaitDNS, id.Value+" resolves elsewhere"
		}
	}
	return out, nil
}

// TestWaitingNameDoesNotSpin (issue 14): a certificate issued without its
// waiting name is of another revision than its spec; that must not make
// its job due again at once after every look (the scheduler claimed it
// about a thousand times a second until the name's re-test).
func TestWaitingNameDoesNotSpin(t *testing.T) {
	e := newTestEnv(t, nil)
	e.clock = nil
	e.store.Now = time.Now
	cs := &countingStore{Store: e.store}
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m.Store, m.Now, m.PollInterval = cs, time.Now, 5*time.Second
	m.SelfTester, m.RetestMin, m.RetestMax = refusingTester{refuse: "w2.certfleet.test"}, time.Hour, time.Hour
	e.sync(spec(t, "w", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "w1.certfleet.test", "w2.certfleet.test"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(time.Minute)
	for e.job("w", certfleet.ECDSAP256).CurrentID == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("w1 never issued: %+v", e.job("w", certfleet.ECDSAP256))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if iss, _ := e.current("w", certfleet.ECDSAP256); len(iss.Identifiers) != 1 {
		t.Fatalf("issued for %v, want w1 alone", certfleet.IdentifierValues(iss.Identifiers))
	}
	time.Sleep(500 * time.Millisecond) // the look right after the issuance
	before := cs.claims.Load()
	time.Sleep(2 * time.Second)
	if n := cs.claims.Load() - before; n > 3 {
		t.Errorf("the scheduler claimed %d times in 2 s with nothing due before the re-test in an hour; it is spinning", n)
	}
	if j := e.job("w", certfleet.ECDSAP256); time.Until(j.NextAt) < 50*time.Minute {
		t.Errorf("next look at %v, want at the re-test in an hour", j.NextAt)
	}
}
