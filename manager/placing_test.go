package manager_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// killAtSave is a store whose instance dies when it would save the URL of
// a new order: the CA has the order, the store only the placing mark.
type killAtSave struct {
	certfleet.Store
	once   sync.Once
	placed chan struct{}
}

func (k *killAtSave) SetPendingOrder(ctx context.Context, key certfleet.JobKey, owner, orderURL string, keyPEM []byte) error {
	k.once.Do(func() { close(k.placed) })
	// Nothing more reaches the store from this instance.
	return certfleet.Errorf(certfleet.ELEASELOST, "the instance was killed before saving order %s", orderURL)
}

// TestTakeoverFindsInterruptedOrder is issue 16's duplicate order: an
// instance placed an order and was killed before the store saved its URL;
// the instance that takes the job over after the lease finds the order at
// the CA (its placing mark says when and for what) and completes it
// instead of placing a second one.
func TestTakeoverFindsInterruptedOrder(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "placing", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "placing.certfleet.test"))

	k := &killAtSave{Store: e.store, placed: make(chan struct{})}
	m1 := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m1.Store, m1.Instance = k, "killed"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	m1.RunOnce(ctx)
	select {
	case <-k.placed:
	default:
		t.Fatal("the first instance placed no order")
	}
	j := e.job("placing", certfleet.ECDSAP256)
	if j.PendingOrderURL != "" || j.Placing.At.IsZero() || j.CurrentID != 0 {
		t.Fatalf("after the kill: pending order %q, mark %+v, current %d; want only the mark", j.PendingOrderURL, j.Placing, j.CurrentID)
	}
	if n := e.ca.NewOrders(); n != 1 {
		t.Fatalf("the CA saw %d orders before the takeover, want 1", n)
	}

	// The lease runs out; another instance takes the job over.
	e.clock.Advance(time.Hour)
	m2 := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m2.Instance = "taker"
	if rep := mustRunOnce(t, m2); rep.Issued != 1 {
		t.Fatalf("takeover: %+v", rep.Results)
	}
	if n := e.ca.NewOrders(); n != 1 {
		t.Errorf("the CA saw %d orders; the takeover must complete the interrupted one, not place another", n)
	}
	if j := e.job("placing", certfleet.ECDSAP256); j.PendingOrderURL != "" || !j.Placing.At.IsZero() {
		t.Errorf("after the issuance: pending order %q, mark %+v; want both cleared", j.PendingOrderURL, j.Placing)
	}
}
