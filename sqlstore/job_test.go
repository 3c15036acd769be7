package sqlstore

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func TestPrepareJobAttempt(t *testing.T) {
	key := certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, err := prepareJobAttempt("fail", key, certfleet.Attempt{Error: "boom"}, certfleet.OutcomeFailed, now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if a.JobKey != key || a.Outcome != certfleet.OutcomeFailed || !a.FinishedAt.Equal(now) || a.Error != "boom" {
		t.Errorf("defaults: got %+v; want the job key, outcome %q and FinishedAt now", a, certfleet.OutcomeFailed)
	}
	given := certfleet.Attempt{Outcome: "other", FinishedAt: now.Add(-time.Minute)}
	if a, _ := prepareJobAttempt("defer", key, given, certfleet.OutcomeDeferred, now, now); a.Outcome != "other" || !a.FinishedAt.Equal(given.FinishedAt) {
		t.Errorf("given outcome and time: got %+v; want them kept", a)
	}
	_, err = prepareJobAttempt("defer", key, certfleet.Attempt{}, certfleet.OutcomeDeferred, time.Time{}, now)
	if certfleet.ErrorCode(err) != certfleet.EINVALID || !strings.Contains(err.Error(), "defer job web") {
		t.Errorf("no next time: %v; want EINVALID naming the deferred job", err)
	}
}
