package manager_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/sqlite"
)

// TestRunWritesHeartbeat (issue 15): the daemon's scheduler records in the
// store when it last looked for work, so that every instance's dashboard
// can tell a quiet fleet from a dead scheduler; it stops when Run ends.
func TestRunWritesHeartbeat(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := &manager.Manager{Store: store, Issuers: map[string]certfleet.Issuer{}, Instance: "hb-test", PollInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- m.Run(ctx) }()
	var hb certfleet.Heartbeat
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		hbs, err := store.Heartbeats(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(hbs) == 1 {
			hb = hbs[0]
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hb.Instance != "hb-test" || hb.RoundAt.Before(start.Add(-time.Second)) || hb.Interval != 50*time.Millisecond || hb.Error != "" || hb.Stale(time.Now()) {
		t.Fatalf("heartbeat %+v, want a fresh one of hb-test with its 50ms poll interval", hb)
	}
}
