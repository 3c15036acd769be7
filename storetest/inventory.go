package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunInventory is the contract of certfleet.InventoryStore (issue 18):
// pending withdrawals are kept per source, replaced whole, and read back
// with their times. newStore must return a new, empty, open store and close
// it when t ends.
func RunInventory(t *testing.T, newStore func(t *testing.T) certfleet.InventoryStore) {
	t.Run("ReplacePerSource", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		a, b := certfleet.InventorySource("ldap-main"), certfleet.InventorySource("teams")
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
		if got, err := s.PendingWithdrawals(ctx, a); err != nil || len(got) != 0 {
			t.Fatalf("empty store: PendingWithdrawals = %v, %v; want none", got, err)
		}
		if err := s.SetPendingWithdrawals(ctx, a, map[string]time.Time{"x": t0, "y": t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPendingWithdrawals(ctx, b, map[string]time.Time{"x": t0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.PendingWithdrawals(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got["x"].Equal(t0) || !got["y"].Equal(t0.Add(time.Hour)) {
			t.Fatalf("PendingWithdrawals(%s) = %v, want x at %v and y an hour later", a, got, t0)
		}
		// Replacing drops what is no longer pending and keeps the other source's.
		if err := s.SetPendingWithdrawals(ctx, a, map[string]time.Time{"y": t0}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.PendingWithdrawals(ctx, a); len(got) != 1 || !got["y"].Equal(t0) {
			t.Fatalf("after replace: %v, want only y at %v", got, t0)
		}
		if got, _ := s.PendingWithdrawals(ctx, b); len(got) != 1 || !got["x"].Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("other source: %v, want x untouched", got)
		}
		if err := s.SetPendingWithdrawals(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.PendingWithdrawals(ctx, a); len(got) != 0 {
			t.Fatalf("after clearing: %v, want none", got)
		}
	})
	t.Run("SourceRequired", func(t *testing.T) {
		s := newStore(t)
		err := s.SetPendingWithdrawals(t.Context(), "", map[string]time.Time{"x": time.Now()})
		if certfleet.ErrorCode(err) != certfleet.EINVALID {
			t.Fatalf("SetPendingWithdrawals without a source = %v, want EINVALID", err)
		}
	})
}

// RunEventBatch is the contract of certfleet.EventBatchSink on an audit
// store: a batch (larger than one transaction) is recorded in order, and a
// batch with a bad event records none. newStore must return a new, empty,
// open store and close it when t ends.
func RunEventBatch(t *testing.T, newStore func(t *testing.T) AuditStore) {
	t.Run("InOrder", func(t *testing.T) {
		s := newStore(t)
		b, ok := s.(certfleet.EventBatchSink)
		if !ok {
			t.Fatal("the store records no batches (certfleet.EventBatchSink)")
		}
		const n = 12000
		events := make([]certfleet.Event, n)
		at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range events {
			events[i] = certfleet.Event{At: at, Kind: certfleet.EventConfigChanged, Actor: "inventory:main", Certificate: fmt.Sprintf("c%05d", i), Reason: "added"}
		}
		if err := b.RecordEvents(t.Context(), events); err != nil {
			t.Fatal(err)
		}
		got, err := s.Events(t.Context(), certfleet.EventFilter{Actor: "inventory:", Limit: certfleet.MaxEventLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != certfleet.MaxEventLimit || got[0].Certificate != fmt.Sprintf("c%05d", n-1) || got[0].Actor != "inventory:main" {
			t.Fatalf("newest page: %d events, first %+v; want %d, the last recorded first", len(got), got[0], certfleet.MaxEventLimit)
		}
	})
	t.Run("BadEventRecordsNone", func(t *testing.T) {
		s := newStore(t)
		b := s.(certfleet.EventBatchSink)
		err := b.RecordEvents(t.Context(), []certfleet.Event{
			{Kind: certfleet.EventConfigChanged, Actor: "inventory:main", Certificate: "a"},
			{Kind: certfleet.EventConfigChanged, Actor: "no-colon", Certificate: "b"},
		})
		if certfleet.ErrorCode(err) != certfleet.EINVALID {
			t.Fatalf("RecordEvents with a bad actor = %v, want EINVALID", err)
		}
		if got, _ := s.Events(t.Context(), certfleet.EventFilter{}); len(got) != 0 {
			t.Errorf("%d events recorded from a refused batch", len(got))
		}
	})
}
