package storetest

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunHeartbeats runs the contract of certfleet.HeartbeatStore: a heartbeat
// round-trips, an instance's newer one replaces its older one, the list is
// latest round first and bounded, old ones are forgotten at the next
// write, and incomplete ones are refused.
func RunHeartbeats(t *testing.T, newStore func(t *testing.T) certfleet.HeartbeatStore) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	for _, h := range []certfleet.Heartbeat{
		{Instance: "old", StartedAt: now.Add(-9 * 24 * time.Hour), RoundAt: now.Add(-8 * 24 * time.Hour), Interval: 30 * time.Second},
		{Instance: "a", StartedAt: now.Add(-time.Hour), RoundAt: now.Add(-time.Minute), Interval: 30 * time.Second},
		{Instance: "b", StartedAt: now.Add(-2 * time.Hour), RoundAt: now.Add(-10 * time.Second), Interval: time.Minute, Error: "database is locked"},
	} {
		if err := s.PutHeartbeat(ctx, h); err != nil {
			t.Fatalf("PutHeartbeat(%s): %v", h.Instance, err)
		}
	}
	got, err := s.Heartbeats(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Instance != "b" || got[1].Instance != "a" {
		t.Fatalf("heartbeats %+v, want b then a (the week-old one forgotten)", got)
	}
	b := got[0]
	if !b.RoundAt.Equal(now.Add(-10*time.Second)) || !b.StartedAt.Equal(now.Add(-2*time.Hour)) || b.Interval != time.Minute || b.Error != "database is locked" {
		t.Errorf("b round-tripped as %+v", b)
	}
	// A newer round of a replaces its row and moves it first.
	if err := s.PutHeartbeat(ctx, certfleet.Heartbeat{Instance: "a", StartedAt: now.Add(-time.Hour), RoundAt: now, Interval: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Heartbeats(ctx, 1)
	if err != nil || len(got) != 1 || got[0].Instance != "a" || !got[0].RoundAt.Equal(now) || got[0].Error != "" {
		t.Fatalf("Heartbeats(1) after a's new round: %+v, %v", got, err)
	}
	for _, bad := range []certfleet.Heartbeat{{RoundAt: now}, {Instance: "x"}} {
		if err := s.PutHeartbeat(ctx, bad); certfleet.ErrorCode(err) != certfleet.EINVALID {
			t.Errorf("PutHeartbeat(%+v) = %v, want EINVALID", bad, err)
		}
	}
}
