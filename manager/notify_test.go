package manager_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
)

// notifyingStore is a store that is a certfleet.Notifier: the test decides
// when a change is reported. It counts claims and reports each look at the
// schedule (NextDue) on looked.
type notifyingStore struct {
	*sqlite.Store
	changes chan struct{}
	claims  atomic.Int64
	looked  chan struct{}
}

func (s *notifyingStore) Changes(ctx context.Context) <-chan struct{} { return s.changes }

func (s *notifyingStore) ClaimDue(ctx context.Context, r certfleet.ClaimRequest) ([]certfleet.Job, error) {
	s.claims.Add(1)
	return s.Store.ClaimDue(ctx, r)
}

func (s *notifyingStore) NextDue(ctx context.Context) (time.Time, bool, error) {
	at, ok, err := s.Store.NextDue(ctx)
	select {
	case s.looked <- struct{}{}:
	default:
	}
	return at, ok, err
}

// TestRunWakesOnStoreChange: work added behind the manager's back (another
// instance) is taken as soon as the store reports a change, not at the next
// poll (an hour away here). Issue 5.
func TestRunWakesOnStoreChange(t *testing.T) {
	e := newTestEnv(t, nil)
	e.store.Now = time.Now
	ns := &notifyingStore{Store: e.store, changes: make(chan struct{}, 1), looked: make(chan struct{}, 1)}
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m.Store, m.Now, m.PollInterval = ns, time.Now, time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The first look finds nothing: the loop now sleeps for an hour.
	select {
	case <-ns.looked:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon never looked at the store")
	}
	e.sync(spec(t, "n1", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "n1.certfleet.test"))
	ns.changes <- struct{}{}
	deadline := time.Now().Add(30 * time.Second)
	for e.job("n1", certfleet.ECDSAP256).CurrentID == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a reported change did not wake the daemon: n1 was not issued")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunClosedChanges: a store that closes its change channel leaves the
// daemon polling, not spinning on the closed channel.
func TestRunClosedChanges(t *testing.T) {
	e := newTestEnv(t, nil)
	ns := &notifyingStore{Store: e.store, changes: make(chan struct{}), looked: make(chan struct{}, 1)}
	close(ns.changes)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m.Store, m.Now, m.PollInterval = ns, time.Now, time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	if n := ns.claims.Load(); n > 2 {
		t.Errorf("daemon claimed %d times in 0.5 s with a closed change channel; it is spinning", n)
	}
}
