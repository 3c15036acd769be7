package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunDeliveries runs the contract of certfleet.DeliveryStore (issue 18):
// an event recorded with hooks is in the audit trail and owed to each hook
// in the same write; a keyed event is recorded once; a delivery is claimed
// by exactly one owner, stays owed after a failed attempt (due again at the
// time the release named), and is owed no more once completed; a claim
// that ran out passes to another owner and the first can no longer end it.
func RunDeliveries(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	t.Run("RecordOwed", func(t *testing.T) { testRecordOwed(t, newStore(t)) })
	t.Run("Keyed", func(t *testing.T) { testRecordKeyed(t, newStore(t)) })
	t.Run("Lifecycle", func(t *testing.T) { testDeliveryLifecycle(t, newStore(t)) })
	t.Run("ConcurrentClaim", func(t *testing.T) { testDeliveryConcurrentClaim(t, newStore(t)) })
	t.Run("ClaimRunsOut", func(t *testing.T) { testDeliveryClaimRunsOut(t, newStore(t)) })
	t.Run("Invalid", func(t *testing.T) { testDeliveryInvalid(t, newStore(t)) })
}

func deliveryEvent(cert string, at time.Time) certfleet.Event {
	return certfleet.Event{At: at, Kind: certfleet.EventRenewed, Actor: "instance:i1", Certificate: cert,
		KeyType: certfleet.ECDSAP256, Serial: "0a0b", IssuanceID: 7, Detail: cert + " renewed"}
}

func mustRecordOwed(t *testing.T, s certfleet.Store, e certfleet.Event, key string, hooks ...string) certfleet.Event {
	t.Helper()
	got, recorded, err := s.RecordOwedEvent(t.Context(), e, key, hooks)
	if err != nil || !recorded {
		t.Fatalf("RecordOwedEvent(%s, %q, %v) = %v, %v; want recorded", e.Kind, key, hooks, recorded, err)
	}
	return got
}

func mustDeliveries(t *testing.T, s certfleet.Store, f certfleet.DeliveryFilter) []certfleet.Delivery {
	t.Helper()
	got, err := s.Deliveries(t.Context(), f)
	if err != nil {
		t.Fatalf("Deliveries(%+v): %v", f, err)
	}
	return got
}

func deliveryIDs(ds []certfleet.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s/%s", d.Hook, d.Event.Certificate))
	}
	return out
}

func testRecordOwed(t *testing.T, s certfleet.Store) {
	t0 := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	web := mustRecordOwed(t, s, deliveryEvent("web", t0), "", "ops", "ldap")
	mail := mustRecordOwed(t, s, deliveryEvent("mail", t0.Add(time.Second)), "", "ops")
	quiet := mustRecordOwed(t, s, deliveryEvent("quiet", t0.Add(2*time.Second)), "")
	if web.ID == 0 || mail.ID <= web.ID || quiet.ID <= mail.ID {
		t.Fatalf("event IDs %d, %d, %d; want increasing", web.ID, mail.ID, quiet.ID)
	}
	// Every event is in the audit trail, hooks or not.
	trail, err := s.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventRenewed})
	if err != nil || len(trail) != 3 {
		t.Fatalf("audit trail = %+v, %v; want the 3 events", trail, err)
	}
	if trail[2].ID != web.ID || trail[2].Detail != "web renewed" || trail[2].IssuanceID != 7 {
		t.Errorf("oldest audit event = %+v, want the web event %d", trail[2], web.ID)
	}

	all := mustDeliveries(t, s, certfleet.DeliveryFilter{})
	if got, want := fmt.Sprint(deliveryIDs(all)), "[ops/web ldap/web ops/mail]"; got != want {
		t.Fatalf("deliveries = %s, want %s (oldest event first, each hook once)", got, want)
	}
	d := all[0]
	if d.ID == 0 || d.Key != certfleet.EventKey(web.ID) || !d.Owed() || d.Attempts != 0 || d.ClaimOwner != "" ||
		d.Event.ID != web.ID || d.Event.Kind != certfleet.EventRenewed || d.Event.Actor != "instance:i1" ||
		d.Event.KeyType != certfleet.ECDSAP256 || d.Event.Serial != "0a0b" || d.Event.IssuanceID != 7 {
		t.Fatalf("delivery = %+v", d)
	}
	checkTime(t, "NextAt (due at the event's time)", d.NextAt, t0)
	checkTime(t, "Event.At", d.Event.At, t0)
	if all[1].Key != d.Key {
		t.Errorf("keys of one event's deliveries differ: %q and %q", d.Key, all[1].Key)
	}
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{Hook: "ops", OwedOnly: true, DueBy: time.Now()}); fmt.Sprint(deliveryIDs(got)) != "[ops/web ops/mail]" {
		t.Errorf("ops owed and due = %v", deliveryIDs(got))
	}
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{Hook: "ops", OwedOnly: true, DueBy: t0.Add(-time.Second)}); len(got) != 0 {
		t.Errorf("owed and due before the events = %v, want none", deliveryIDs(got))
	}
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{Hook: "ops", Limit: 1}); fmt.Sprint(deliveryIDs(got)) != "[ops/web]" {
		t.Errorf("limit 1 = %v", deliveryIDs(got))
	}
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{Hook: "nobody"}); len(got) != 0 {
		t.Errorf("unknown hook = %v, want none", deliveryIDs(got))
	}
}

func testRecordKeyed(t *testing.T, s certfleet.Store) {
	e := deliveryEvent("web", time.Now())
	e.Kind = certfleet.EventExpiring
	first := mustRecordOwed(t, s, e, "certfleet-incident-4-opened-warning", "ops", "ldap")
	again, recorded, err := s.RecordOwedEvent(t.Context(), e, "certfleet-incident-4-opened-warning", []string{"ops", "ldap"})
	if err != nil || recorded || again.ID != 0 {
		t.Fatalf("recording a key again = %+v, %v, %v; want not recorded", again, recorded, err)
	}
	trail, err := s.Events(t.Context(), certfleet.EventFilter{Kind: certfleet.EventExpiring})
	if err != nil || len(trail) != 1 || trail[0].ID != first.ID {
		t.Fatalf("audit trail = %+v, %v; want the first event only", trail, err)
	}
	ds := mustDeliveries(t, s, certfleet.DeliveryFilter{})
	if len(ds) != 2 || ds[0].Key != "certfleet-incident-4-opened-warning" || ds[1].Key != ds[0].Key {
		t.Fatalf("deliveries = %+v; want two with the given key", ds)
	}
	// Another key is another event.
	mustRecordOwed(t, s, e, "certfleet-incident-4-worsened-critical", "ops")
	if ds := mustDeliveries(t, s, certfleet.DeliveryFilter{Hook: "ops"}); len(ds) != 2 {
		t.Fatalf("ops deliveries = %d, want 2", len(ds))
	}
}

func mustClaimDelivery(t *testing.T, s certfleet.Store, id int64, owner string, now time.Time) certfleet.Delivery {
	t.Helper()
	d, won, err := s.ClaimDelivery(t.Context(), id, owner, now, now.Add(time.Minute))
	if err != nil || !won {
		t.Fatalf("ClaimDelivery(%d, %s) = %v, %v; want won", id, owner, won, err)
	}
	return d
}

func wantNoClaim(t *testing.T, s certfleet.Store, id int64, owner string, now time.Time, why string) {
	t.Helper()
	if _, won, err := s.ClaimDelivery(t.Context(), id, owner, now, now.Add(time.Minute)); err != nil || won {
		t.Fatalf("ClaimDelivery(%d, %s) %s = %v, %v; want lost", id, owner, why, won, err)
	}
}

func testDeliveryLifecycle(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mustRecordOwed(t, s, deliveryEvent("web", now), "", "ops")
	id := mustDeliveries(t, s, certfleet.DeliveryFilter{})[0].ID

	d := mustClaimDelivery(t, s, id, "a", now)
	if d.ClaimOwner != "a" || d.Event.Certificate != "web" || d.Key == "" {
		t.Fatalf("claimed delivery = %+v", d)
	}
	wantNoClaim(t, s, id, "b", now, "while a holds it")
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{OwedOnly: true, DueBy: now}); len(got) != 0 {
		t.Errorf("due while claimed = %v, want none", deliveryIDs(got))
	}
	err := s.CompleteDelivery(ctx, id, "b", now)
	wantCode(t, "CompleteDelivery by another owner", err, certfleet.ELEASELOST)
	err = s.ReleaseDelivery(ctx, id, "b", "nope", now)
	wantCode(t, "ReleaseDelivery by another owner", err, certfleet.ELEASELOST)

	// A failed attempt: owed, counted, due again at next only.
	next := now.Add(10 * time.Second)
	if err := s.ReleaseDelivery(ctx, id, "a", "webhook answered 503 Service Unavailable", next); err != nil {
		t.Fatal(err)
	}
	d = mustDeliveries(t, s, certfleet.DeliveryFilter{})[0]
	if !d.Owed() || d.Attempts != 1 || d.LastError != "webhook answered 503 Service Unavailable" || d.ClaimOwner != "" {
		t.Fatalf("after a failed attempt: %+v", d)
	}
	checkTime(t, "NextAt", d.NextAt, next)
	wantNoClaim(t, s, id, "a", now.Add(5*time.Second), "before its next attempt is due")
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{OwedOnly: true, DueBy: now.Add(5 * time.Second)}); len(got) != 0 {
		t.Errorf("due before next = %v, want none", deliveryIDs(got))
	}
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{OwedOnly: true}); len(got) != 1 {
		t.Errorf("owed (any time) = %v, want it", deliveryIDs(got))
	}

	// The retry succeeds: owed no more, and nobody can claim it again.
	mustClaimDelivery(t, s, id, "b", next)
	at := next.Add(time.Second)
	if err := s.CompleteDelivery(ctx, id, "b", at); err != nil {
		t.Fatal(err)
	}
	d = mustDeliveries(t, s, certfleet.DeliveryFilter{})[0]
	if d.Owed() || d.ClaimOwner != "" || d.Attempts != 1 || d.LastError != "" {
		t.Fatalf("after delivery: %+v", d)
	}
	checkTime(t, "DeliveredAt", d.DeliveredAt, at)
	wantNoClaim(t, s, id, "a", at.Add(time.Hour), "after it was delivered")
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{OwedOnly: true}); len(got) != 0 {
		t.Errorf("owed after delivery = %v, want none", deliveryIDs(got))
	}
	err = s.CompleteDelivery(ctx, id, "b", at)
	wantCode(t, "CompleteDelivery twice", err, certfleet.ELEASELOST)
}

// testDeliveryConcurrentClaim: of many owners claiming one delivery at
// once, exactly one wins.
func testDeliveryConcurrentClaim(t *testing.T, s certfleet.Store) {
	now := time.Now()
	mustRecordOwed(t, s, deliveryEvent("web", now), "", "ops")
	id := mustDeliveries(t, s, certfleet.DeliveryFilter{})[0].ID
	const n = 8
	var (
		wg   sync.WaitGroup
		wins atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			_, won, err := s.ClaimDelivery(t.Context(), id, fmt.Sprintf("owner-%d", i), now, now.Add(time.Minute))
			if err != nil {
				t.Errorf("ClaimDelivery(owner-%d): %v", i, err)
			}
			if won {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d of %d concurrent claims won, want exactly 1", got, n)
	}
}

// testDeliveryClaimRunsOut: a claimant that went away (its claim ran out)
// leaves the delivery to another owner, and cannot end the new claim.
func testDeliveryClaimRunsOut(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mustRecordOwed(t, s, deliveryEvent("web", now), "", "ops")
	id := mustDeliveries(t, s, certfleet.DeliveryFilter{})[0].ID
	mustClaimDelivery(t, s, id, "gone", now) // until now+1m
	wantNoClaim(t, s, id, "b", now.Add(30*time.Second), "before the claim ran out")
	later := now.Add(2 * time.Minute)
	if got := mustDeliveries(t, s, certfleet.DeliveryFilter{OwedOnly: true, DueBy: later}); len(got) != 1 {
		t.Fatalf("due once the claim ran out = %v, want it", deliveryIDs(got))
	}
	mustClaimDelivery(t, s, id, "b", later)
	wantCode(t, "CompleteDelivery by the gone claimant", s.CompleteDelivery(ctx, id, "gone", later), certfleet.ELEASELOST)
	if err := s.CompleteDelivery(ctx, id, "b", later); err != nil {
		t.Fatal(err)
	}
}

func testDeliveryInvalid(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	good := deliveryEvent("web", time.Now())
	for _, tc := range []struct {
		name  string
		e     certfleet.Event
		key   string
		hooks []string
	}{
		{"bad event", certfleet.Event{Kind: certfleet.EventRenewed}, "", []string{"ops"}},
		{"bad hook name", good, "", []string{"Ops!"}},
		{"hook twice", good, "", []string{"ops", "ops"}},
		{"key with a newline", good, "a\nb", []string{"ops"}},
		{"long key", good, string(make([]byte, certfleet.MaxDeliveryKey+1)), []string{"ops"}},
	} {
		_, _, err := s.RecordOwedEvent(ctx, tc.e, tc.key, tc.hooks)
		wantCode(t, "RecordOwedEvent: "+tc.name, err, certfleet.EINVALID)
	}
	if evs, err := s.Events(ctx, certfleet.EventFilter{}); err != nil || len(evs) != 0 {
		t.Errorf("events after refused records = %+v, %v; want none", evs, err)
	}
	if ds := mustDeliveries(t, s, certfleet.DeliveryFilter{}); len(ds) != 0 {
		t.Errorf("deliveries after refused records = %v, want none", deliveryIDs(ds))
	}
	_, err := s.Deliveries(ctx, certfleet.DeliveryFilter{Limit: -1})
	wantCode(t, "Deliveries with a negative limit", err, certfleet.EINVALID)
	_, _, err = s.ClaimDelivery(ctx, 1, "", time.Now(), time.Now().Add(time.Minute))
	wantCode(t, "ClaimDelivery without an owner", err, certfleet.EINVALID)
}
