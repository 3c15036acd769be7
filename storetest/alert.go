package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// RunAlerts runs the contract of certfleet.IncidentStore: observations
// open, update and (when newer) resolve incidents, at most one open per
// key; notifications are claimed by exactly one owner, stay owed after a
// failed delivery, and are owed again as an incident worsens and resolves.
func RunAlerts(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	t.Run("Lifecycle", func(t *testing.T) { testIncidentLifecycle(t, newStore(t)) })
	t.Run("ObservationOrder", func(t *testing.T) { testIncidentObservationOrder(t, newStore(t)) })
	t.Run("ConcurrentObserve", func(t *testing.T) { testIncidentConcurrentObserve(t, newStore(t)) })
	t.Run("ConcurrentClaim", func(t *testing.T) { testIncidentConcurrentClaim(t, newStore(t)) })
	t.Run("FailedDelivery", func(t *testing.T) { testIncidentFailedDelivery(t, newStore(t)) })
	t.Run("ClaimantGone", func(t *testing.T) { testIncidentClaimantGone(t, newStore(t)) })
	t.Run("Filters", func(t *testing.T) { testIncidentFilters(t, newStore(t)) })
}

// observation returns an expiry observation of certificate name at the
// given time and severity.
func observation(name string, sev certfleet.Severity, at time.Time) certfleet.Incident {
	return certfleet.Incident{
		Key:  certfleet.IncidentKey(certfleet.IncidentExpiry, name, certfleet.ECDSAP256, ""),
		Kind: certfleet.IncidentExpiry, Certificate: name, KeyType: certfleet.ECDSAP256,
		Severity: sev, Summary: name + " is " + string(sev), Serial: "0a0b",
		NotAfter: at.Add(24 * time.Hour), Failures: 2, LastError: "connection refused", UpdatedAt: at,
	}
}

func mustObserve(t *testing.T, s certfleet.Store, o certfleet.Incident) (certfleet.Incident, bool) {
	t.Helper()
	got, applied, err := s.ObserveIncident(t.Context(), o)
	if err != nil {
		t.Fatalf("ObserveIncident(%s at %v): %v", o.Key, o.UpdatedAt, err)
	}
	return got, applied
}

func mustIncident(t *testing.T, s certfleet.Store, id int64) certfleet.Incident {
	t.Helper()
	list, err := s.Incidents(t.Context(), certfleet.IncidentFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range list {
		if i.ID == id {
			return i
		}
	}
	t.Fatalf("incident %d not listed", id)
	return certfleet.Incident{}
}

func wantPending(t *testing.T, i certfleet.Incident, state string) {
	t.Helper()
	got, ok := i.Pending()
	if state == "" && ok || state != "" && got != state {
		t.Fatalf("incident %d (severity %s, notified %q, resolved %v) pending %q, want %q", i.ID, i.Severity, i.NotifiedSeverity, !i.Open(), got, state)
	}
}

// claimAndComplete claims incident id as owner and records state sent.
func claimAndComplete(t *testing.T, s certfleet.Store, id int64, owner, state string) certfleet.Incident {
	t.Helper()
	now := time.Now()
	inc, won, err := s.ClaimNotification(t.Context(), id, owner, now, now.Add(time.Minute))
	if err != nil || !won {
		t.Fatalf("ClaimNotification(%d, %s) = %v, %v; want won", id, owner, won, err)
	}
	if got, _ := inc.Pending(); got != state {
		t.Fatalf("claimed incident owes %q, want %q", got, state)
	}
	if err := s.CompleteNotification(t.Context(), id, owner, state, inc.Severity, now); err != nil {
		t.Fatalf("CompleteNotification(%d, %s): %v", id, state, err)
	}
	return mustIncident(t, s, id)
}

func testIncidentLifecycle(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	inc, applied := mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0))
	if !applied || inc.ID == 0 || !inc.Open() || inc.Severity != certfleet.SeverityWarning || inc.Failures != 2 ||
		inc.LastError != "connection refused" || inc.Serial != "0a0b" || inc.Kind != certfleet.IncidentExpiry ||
		inc.KeyType != certfleet.ECDSAP256 || inc.Certificate != "web" {
		t.Fatalf("opened incident = %+v (applied %v)", inc, applied)
	}
	checkTime(t, "OpenedAt", inc.OpenedAt, t0)
	checkTime(t, "UpdatedAt", inc.UpdatedAt, t0)
	checkTime(t, "NotAfter", inc.NotAfter, t0.Add(24*time.Hour))
	wantPending(t, inc, certfleet.NotifyOpened)

	// A second owner cannot complete or release a claim it does not hold.
	if err := s.CompleteNotification(ctx, inc.ID, "nobody", certfleet.NotifyOpened, certfleet.SeverityWarning, t0); err == nil {
		t.Fatal("CompleteNotification without a claim succeeded")
	} else {
		wantCode(t, "CompleteNotification without a claim", err, certfleet.ELEASELOST)
	}
	inc = claimAndComplete(t, s, inc.ID, "a", certfleet.NotifyOpened)
	if inc.NotifiedSeverity != certfleet.SeverityWarning || inc.ClaimOwner != "" || inc.NotifiedAt.IsZero() {
		t.Fatalf("after the opened notification: %+v", inc)
	}
	wantPending(t, inc, "")
	if _, won, err := s.ClaimNotification(ctx, inc.ID, "b", time.Now(), time.Now().Add(time.Minute)); err != nil || won {
		t.Fatalf("claim with nothing owed = %v, %v; want lost", won, err)
	}

	// The same severity again: updated, nothing owed.
	inc, applied = mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0.Add(time.Minute)))
	if !applied {
		t.Fatal("newer observation not applied")
	}
	wantPending(t, inc, "")
	// Worse: owed "worsened", once.
	inc, _ = mustObserve(t, s, observation("web", certfleet.SeverityCritical, t0.Add(2*time.Minute)))
	wantPending(t, inc, certfleet.NotifyWorsened)
	inc = claimAndComplete(t, s, inc.ID, "b", certfleet.NotifyWorsened)
	wantPending(t, inc, "")
	// Better again, then as bad as notified: nothing owed.
	inc, _ = mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0.Add(3*time.Minute)))
	wantPending(t, inc, "")
	inc, _ = mustObserve(t, s, observation("web", certfleet.SeverityCritical, t0.Add(4*time.Minute)))
	wantPending(t, inc, "")
	if inc.NotifiedSeverity != certfleet.SeverityCritical {
		t.Fatalf("NotifiedSeverity = %q, want critical", inc.NotifiedSeverity)
	}

	// Resolved: owed "resolved", once; then settled.
	if ok, err := s.ResolveIncident(ctx, inc.ID, t0.Add(5*time.Minute)); err != nil || !ok {
		t.Fatalf("ResolveIncident = %v, %v", ok, err)
	}
	inc = mustIncident(t, s, inc.ID)
	checkTime(t, "ResolvedAt", inc.ResolvedAt, t0.Add(5*time.Minute))
	wantPending(t, inc, certfleet.NotifyResolved)
	inc = claimAndComplete(t, s, inc.ID, "a", certfleet.NotifyResolved)
	if !inc.ResolutionNotified {
		t.Fatalf("ResolutionNotified false after the resolved notification")
	}
	wantPending(t, inc, "")
	if ok, err := s.ResolveIncident(ctx, inc.ID, t0.Add(6*time.Minute)); err != nil || ok {
		t.Fatalf("resolving twice = %v, %v; want false", ok, err)
	}
	if pend, err := s.Incidents(ctx, certfleet.IncidentFilter{Pending: true}); err != nil || len(pend) != 0 {
		t.Fatalf("pending after everything was sent = %+v, %v", pend, err)
	}

	// The condition returns: a new incident.
	again, applied := mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0.Add(7*time.Minute)))
	if !applied || again.ID == inc.ID || !again.Open() {
		t.Fatalf("returning condition = %+v (applied %v); want a new open incident", again, applied)
	}
	wantPending(t, again, certfleet.NotifyOpened)

	// An incident resolved before anything was announced or tried owes
	// nothing.
	quiet, _ := mustObserve(t, s, observation("quiet", certfleet.SeverityCritical, t0))
	if ok, err := s.ResolveIncident(ctx, quiet.ID, t0.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("ResolveIncident = %v, %v", ok, err)
	}
	wantPending(t, mustIncident(t, s, quiet.ID), "")
	if _, won, err := s.ClaimNotification(ctx, quiet.ID, "a", time.Now(), time.Now().Add(time.Minute)); err != nil || won {
		t.Fatalf("claim of a quietly resolved incident = %v, %v; want lost", won, err)
	}

	for _, bad := range []certfleet.Incident{
		{Kind: certfleet.IncidentExpiry, Certificate: "x", Severity: certfleet.SeverityWarning, UpdatedAt: t0},
		{Key: "k", Kind: certfleet.IncidentExpiry, Certificate: "x", Severity: "bad", UpdatedAt: t0},
		{Key: "k", Kind: certfleet.IncidentExpiry, Certificate: "x", Severity: certfleet.SeverityWarning},
	} {
		_, _, err := s.ObserveIncident(ctx, bad)
		wantCode(t, fmt.Sprintf("ObserveIncident(%+v)", bad), err, certfleet.EINVALID)
	}
}

// testIncidentObservationOrder: of two observations, the newer wins,
// whichever arrives first.
func testIncidentObservationOrder(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	inc, _ := mustObserve(t, s, observation("web", certfleet.SeverityCritical, t0.Add(time.Minute)))
	// An older observation arriving late changes nothing.
	got, applied := mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0))
	if applied || got.ID != inc.ID || got.Severity != certfleet.SeverityCritical {
		t.Fatalf("older observation: %+v (applied %v); want ignored", got, applied)
	}
	// A resolution older than the last observation that saw it is ignored.
	if ok, err := s.ResolveIncident(ctx, inc.ID, t0.Add(30*time.Second)); err != nil || ok {
		t.Fatalf("stale ResolveIncident = %v, %v; want false", ok, err)
	}
	if ok, err := s.ResolveIncident(ctx, inc.ID, t0.Add(2*time.Minute)); err != nil || !ok {
		t.Fatalf("ResolveIncident = %v, %v", ok, err)
	}
	// An observation made before the resolution does not reopen it.
	if got, applied := mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0.Add(90*time.Second))); applied || got.ID != 0 {
		t.Fatalf("observation older than the resolution = %+v (applied %v); want ignored", got, applied)
	}
	open, err := s.Incidents(ctx, certfleet.IncidentFilter{OpenOnly: true})
	if err != nil || len(open) != 0 {
		t.Fatalf("open incidents = %+v, %v; want none", open, err)
	}
}

// testIncidentConcurrentObserve: many observers of one new condition at
// once open exactly one incident.
func testIncidentConcurrentObserve(t *testing.T, s certfleet.Store) {
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	const n = 8
	var wg sync.WaitGroup
	ids := make([]int64, n)
	errs := make([]error, n)
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inc, _, err := s.ObserveIncident(t.Context(), observation("web", certfleet.SeverityWarning, t0.Add(time.Duration(k)*time.Millisecond)))
			ids[k], errs[k] = inc.ID, err
		}()
	}
	wg.Wait()
	for k := range n {
		if errs[k] != nil {
			t.Fatalf("observer %d: %v", k, errs[k])
		}
		if ids[k] != ids[0] || ids[k] == 0 {
			t.Fatalf("observers got incidents %v; want one", ids)
		}
	}
	all, err := s.Incidents(t.Context(), certfleet.IncidentFilter{})
	if err != nil || len(all) != 1 {
		t.Fatalf("incidents = %d, %v; want 1", len(all), err)
	}
	checkTime(t, "UpdatedAt", all[0].UpdatedAt, t0.Add((n-1)*time.Millisecond))
}

// testIncidentConcurrentClaim: of many owners claiming one notification at
// once, exactly one wins; an expired claim can be taken over.
func testIncidentConcurrentClaim(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	inc, _ := mustObserve(t, s, observation("web", certfleet.SeverityWarning, time.Now()))
	const n = 8
	var (
		wg     sync.WaitGroup
		wins   atomic.Int32
		winner atomic.Value
	)
	now := time.Now()
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("instance-%d", k)
			_, won, err := s.ClaimNotification(ctx, inc.ID, owner, now, now.Add(time.Minute))
			if err != nil {
				t.Errorf("claim %s: %v", owner, err)
			}
			if won {
				wins.Add(1)
				winner.Store(owner)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d owners won the claim; want exactly 1", wins.Load())
	}
	// While the winner's claim runs, nobody else gets it; after it ran
	// out (the winner crashed), another owner may take it over.
	if _, won, _ := s.ClaimNotification(ctx, inc.ID, "late", now.Add(30*time.Second), now.Add(2*time.Minute)); won {
		t.Fatal("a running claim was taken over")
	}
	if _, won, err := s.ClaimNotification(ctx, inc.ID, "late", now.Add(2*time.Minute), now.Add(3*time.Minute)); err != nil || !won {
		t.Fatalf("taking over an expired claim = %v, %v", won, err)
	}
	err := s.CompleteNotification(ctx, inc.ID, winner.Load().(string), certfleet.NotifyOpened, certfleet.SeverityWarning, now)
	wantCode(t, "CompleteNotification by the owner of an expired claim", err, certfleet.ELEASELOST)
	if err := s.CompleteNotification(ctx, inc.ID, "late", certfleet.NotifyOpened, certfleet.SeverityWarning, now); err != nil {
		t.Fatal(err)
	}
}

// testIncidentFailedDelivery: a failed delivery keeps the notification
// owed; an incident resolved after a failed "opened" still owes its
// resolution.
func testIncidentFailedDelivery(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC()
	inc, _ := mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0))
	now := time.Now()
	if _, won, err := s.ClaimNotification(ctx, inc.ID, "a", now, now.Add(time.Minute)); err != nil || !won {
		t.Fatalf("claim = %v, %v", won, err)
	}
	if err := s.ReleaseNotification(ctx, inc.ID, "b", "not mine"); certfleet.ErrorCode(err) != certfleet.ELEASELOST {
		t.Fatalf("release by another owner: %v; want lease_lost", err)
	}
	if err := s.ReleaseNotification(ctx, inc.ID, "a", "webhook: 503 Service Unavailable"); err != nil {
		t.Fatal(err)
	}
	inc = mustIncident(t, s, inc.ID)
	if inc.DeliveryAttempts != 1 || inc.DeliveryError != "webhook: 503 Service Unavailable" || inc.ClaimOwner != "" {
		t.Fatalf("after a failed delivery: %+v", inc)
	}
	wantPending(t, inc, certfleet.NotifyOpened)
	if pend, err := s.Incidents(ctx, certfleet.IncidentFilter{Pending: true}); err != nil || len(pend) != 1 {
		t.Fatalf("pending = %d, %v; want 1", len(pend), err)
	}
	// Resolved before any delivery got through: the resolution is owed.
	if ok, err := s.ResolveIncident(ctx, inc.ID, t0.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("ResolveIncident = %v, %v", ok, err)
	}
	inc = mustIncident(t, s, inc.ID)
	wantPending(t, inc, certfleet.NotifyResolved)
	inc = claimAndComplete(t, s, inc.ID, "b", certfleet.NotifyResolved)
	if inc.DeliveryAttempts != 0 || inc.DeliveryError != "" {
		t.Fatalf("after a delivery: attempts %d, error %q; want cleared", inc.DeliveryAttempts, inc.DeliveryError)
	}
	wantPending(t, inc, "")
}

// testIncidentClaimantGone: an instance that claimed the opened
// notification may have sent it and then died before recording it. When
// the incident resolves under that claim, the resolution is owed once the
// claim has run out, so that an announcement that may have gone out is not
// left without its resolution (nor the incident unsettled for ever).
func testIncidentClaimantGone(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC()
	inc, _ := mustObserve(t, s, observation("web", certfleet.SeverityWarning, t0))
	if _, won, err := s.ClaimNotification(ctx, inc.ID, "a", t0, t0.Add(time.Minute)); err != nil || !won {
		t.Fatalf("claim = %v, %v", won, err)
	}
	// a sends, then dies: no CompleteNotification, no ReleaseNotification.
	if ok, err := s.ResolveIncident(ctx, inc.ID, t0.Add(time.Second)); err != nil || !ok {
		t.Fatalf("ResolveIncident = %v, %v", ok, err)
	}
	inc = mustIncident(t, s, inc.ID)
	wantPending(t, inc, certfleet.NotifyResolved)
	if _, won, err := s.ClaimNotification(ctx, inc.ID, "b", t0.Add(30*time.Second), t0.Add(time.Minute)); err != nil || won {
		t.Fatalf("claim while a's claim runs = %v, %v; want lost", won, err)
	}
	later := t0.Add(2 * time.Minute)
	got, won, err := s.ClaimNotification(ctx, inc.ID, "b", later, later.Add(time.Minute))
	if err != nil || !won {
		t.Fatalf("claim after a's claim ran out = %v, %v; want won", won, err)
	}
	wantPending(t, got, certfleet.NotifyResolved)
	if err := s.CompleteNotification(ctx, inc.ID, "b", certfleet.NotifyResolved, got.Severity, later); err != nil {
		t.Fatal(err)
	}
	if pend, err := s.Incidents(ctx, certfleet.IncidentFilter{Pending: true}); err != nil || len(pend) != 0 {
		t.Fatalf("pending after the resolution went out = %d, %v; want none", len(pend), err)
	}
}

func testIncidentFilters(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC()
	a, _ := mustObserve(t, s, observation("a", certfleet.SeverityWarning, t0))
	b, _ := mustObserve(t, s, observation("b", certfleet.SeverityWarning, t0))
	agent := observation("b", certfleet.SeverityWarning, t0)
	agent.Kind, agent.Subject = certfleet.IncidentAgentStale, "lb1"
	agent.Key = certfleet.IncidentKey(agent.Kind, "b", agent.KeyType, "lb1")
	c, _ := mustObserve(t, s, agent)
	if c.Subject != "lb1" || c.Kind != certfleet.IncidentAgentStale || c.ID == b.ID {
		t.Fatalf("agent incident = %+v", c)
	}
	claimAndComplete(t, s, a.ID, "x", certfleet.NotifyOpened)
	if ok, err := s.ResolveIncident(ctx, b.ID, t0.Add(time.Second)); err != nil || !ok {
		t.Fatalf("resolve: %v %v", ok, err)
	}
	ids := func(f certfleet.IncidentFilter) []int64 {
		t.Helper()
		list, err := s.Incidents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, i := range list {
			out = append(out, i.ID)
		}
		return out
	}
	check := func(what string, got []int64, want ...int64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("all (newest first)", ids(certfleet.IncidentFilter{}), c.ID, b.ID, a.ID)
	check("open", ids(certfleet.IncidentFilter{OpenOnly: true}), c.ID, a.ID)
	check("certificate b", ids(certfleet.IncidentFilter{Certificate: "b"}), c.ID, b.ID)
	check("pending", ids(certfleet.IncidentFilter{Pending: true}), c.ID)
	check("limit", ids(certfleet.IncidentFilter{Limit: 1}), c.ID)
}
