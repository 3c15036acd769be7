package alert_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/storetest"
)

// TestEventRoundsItsCertificate is issue 13's finding on serve under load:
// every PUT's spec_changed event (and every issuance's) woke a round over
// every certificate, at most once a second, so serve evaluated 100,000
// certificates continuously while names were declared. An event about one
// certificate now wakes a round over that certificate alone: it resolves
// that certificate's incident, and leaves the others to the next full
// round (Settings.Interval, or Wake), which still finds them.
func TestEventRoundsItsCertificate(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testEventRoundsItsCertificate(t, openSQLite(t, filepath.Join(t.TempDir(), "certfleet.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		testEventRoundsItsCertificate(t, openPostgres(t, pgtest.DSN(t)))
	})
}

func testEventRoundsItsCertificate(t *testing.T, s certfleet.Store) {
	ctx := t.Context()
	t0 := time.Now().UTC().Truncate(time.Second)
	specs := []certfleet.CertificateSpec{storetest.NewSpec("a"), storetest.NewSpec("b")}
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, specs); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "test", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("ClaimDue = %v, %v; want both jobs", jobs, err)
	}
	fs := map[string]*fixture{}
	for i, sp := range specs {
		f := &fixture{store: s, spec: sp, key: certfleet.JobKey{Spec: sp.Name, KeyType: certfleet.ECDSAP256}, t0: t0}
		f.complete(t, t0.Add(time.Duration(i)*time.Second))
		f.fail(t, "the CA said no") // 10 days left at t0+80 days, and failing: a warning each
		fs[sp.Name] = f
	}
	r := newReceiver(t)
	clk := &clock{now: t0.Add(day(80))}
	e := &alert.Evaluator{Store: s, Instance: "one", Now: clk.Now, Settings: alert.Settings{Interval: time.Hour},
		Notifiers: []alert.Notifier{&alert.Webhook{URL: r.srv.URL}}}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitNotified := func(n int) []alert.Notification {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got := r.notifications(); len(got) >= n {
				return got
			}
		}
		t.Fatalf("notifications = %v, want %d", states(r.notifications()), n)
		return nil
	}
	open := func(name string) bool {
		t.Helper()
		inc, err := s.Incidents(ctx, certfleet.IncidentFilter{OpenOnly: true, Certificate: name})
		if err != nil {
			t.Fatal(err)
		}
		return len(inc) == 1
	}

	// Run's first round is a full one: both open.
	got := waitNotified(2)
	if states(got)[0] != "opened/warning" || states(got)[1] != "opened/warning" || !open("a") || !open("b") {
		t.Fatalf("after the first round: notifications %v, a open %v, b open %v; want both opened", states(got), open("a"), open("b"))
	}
	// Both renewed; an event names b alone.
	for _, f := range fs {
		f.issue(t, t0.Add(day(79)))
	}
	if err := e.RecordEvent(ctx, certfleet.Event{Kind: certfleet.EventSpecChanged, Certificate: "b", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got = waitNotified(3)
	if n := got[2]; n.State != "resolved" || n.Certificate != "b" {
		t.Fatalf("third notification = %s of %s, want b resolved", n.State, n.Certificate)
	}
	// The round was over b alone: a's incident stays open, though its
	// renewal succeeded too, until a full round.
	if !open("a") || open("b") {
		t.Fatalf("after b's round: a open %v, b open %v; want a still open (the round looked at b alone), b resolved", open("a"), open("b"))
	}
	e.Wake()
	got = waitNotified(4)
	if n := got[3]; n.State != "resolved" || n.Certificate != "a" || open("a") {
		t.Fatalf("fourth notification = %s of %s (a open %v), want a resolved by the full round", n.State, n.Certificate, open("a"))
	}
	if len(got) != 4 {
		t.Errorf("notifications = %v, want 4", states(got))
	}
}
