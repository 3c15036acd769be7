package multitest

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
)

// TestAPIWarmIndex: an instance whose name index is fresh (it served a
// request a moment ago) still learns at once of a name requested on another
// instance: the NOTIFY that wakes its long-poll also renews its index, so
// the long-poll returns within milliseconds of issuance rather than after
// the index's TTL.
func TestAPIWarmIndex(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	a := c.newAPIInstance(ctx, &wg, "api-a", time.Second)
	b := c.newAPIInstance(ctx, &wg, "api-b", 30*time.Second)
	b.stopManager() // only A issues, only A's NOTIFY wakes B
	id, secret, hash := certfleet.NewTokenSecret()
	if err := a.store.CreateToken(t.Context(), certfleet.Token{ID: id, Names: []string{"*"},
		Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ca, cb := a.client(secret), b.client(secret)
	const name = "warm.certfleet.test"
	// A lookup builds B's name index, without the name.
	_, err := cb.Fetch(t.Context(), name, "fullchain", httpapi.FetchOptions{})
	if p := (*httpapi.Problem)(nil); !errors.As(err, &p) || p.Status != http.StatusNotFound {
		t.Fatalf("before the PUT: %v, want 404", err)
	}
	st, err := ca.PutName(t.Context(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cb.Fetch(t.Context(), name, "fullchain", httpapi.FetchOptions{Wait: 20 * time.Second})
	at := time.Now()
	if err != nil {
		t.Fatalf("long-poll on B: %v", err)
	}
	if lat, _ := c.checkServed(st.Certificate, p, at); lat > 500*time.Millisecond {
		t.Errorf("B's long-poll returned %v after issuance, want under 500 ms (its name index was stale?)", lat)
	}
}
