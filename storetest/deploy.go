package storetest

// The deploy state of a job (issue 15): an issuance not written is
// recorded, counted, listed and cleared once the files are written.

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

func testDeployState(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	one, two := NewSpec("one"), NewSpec("two")
	mustSync(t, s, certfleet.SourceConfig, one, two)
	mustComplete(t, s, one, certfleet.ECDSAP256)
	mustComplete(t, s, two, certfleet.ECDSAP256)
	key := keyOf("one", certfleet.ECDSAP256)
	if d := mustJob(t, s, key).Deploy; d != (certfleet.DeployState{}) {
		t.Fatalf("deploy state of a new job = %+v, want zero (written)", d)
	}
	failedAt := time.Now().Add(-time.Second)
	next := time.Now().Add(5 * time.Minute)
	for i := 1; i <= 2; i++ {
		err := s.SetDeployState(t.Context(), key, certfleet.DeployState{
			Error: "chown: unknown user nginx", FailedAt: failedAt, NextAt: next, Failures: 99})
		if err != nil {
			t.Fatalf("SetDeployState(failed) %d: %v", i, err)
		}
	}
	j := mustJob(t, s, key)
	if j.Deploy.Error != "chown: unknown user nginx" || j.Deploy.Failures != 2 || !j.Deploy.NotWritten() {
		t.Errorf("after two failed writes: %+v; want the error and 2 failures (the count is the store's)", j.Deploy)
	}
	checkTime(t, "Deploy.FailedAt", j.Deploy.FailedAt, failedAt)
	checkTime(t, "Deploy.NextAt", j.Deploy.NextAt, next)
	// The lease, the order schedule and the failures are not touched.
	if j.Failures != 0 || j.LeaseOwner != "" {
		t.Errorf("order failures %d, lease %q after a deploy failure; want 0, none", j.Failures, j.LeaseOwner)
	}
	if got := mustJobs(t, s, certfleet.JobFilter{NotWritten: true}); len(got) != 1 || got[0].JobKey != key {
		t.Errorf("Jobs(NotWritten) = %v, want only %s", got, key)
	}
	// Failing: the job not written, and one whose order failed.
	three := NewSpec("three")
	mustSync(t, s, certfleet.SourceConfig, one, two, three)
	k3 := keyOf("three", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", k3)
	if err := s.FailJob(t.Context(), k3, "owner-a", certfleet.Attempt{Instance: "owner-a", Error: "boom"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := mustJobs(t, s, certfleet.JobFilter{Failing: true}); len(got) != 2 || got[0].JobKey != key || got[1].JobKey != k3 {
		t.Errorf("Jobs(Failing) = %v, want %s (not written) and %s (failed)", got, key, k3)
	}
	st, err := s.JobStats(t.Context(), time.Now())
	if err != nil || st.NotWritten != 1 {
		t.Errorf("JobStats.NotWritten = %d, %v; want 1", st.NotWritten, err)
	}
	var seen int
	err = certfleet.EachCurrentCertificate(t.Context(), s, certfleet.CurrentFilter{}, func(c certfleet.CurrentCertificate) error {
		if c.Spec == "one" {
			seen++
			if c.Deploy.Error != j.Deploy.Error || c.Deploy.Failures != 2 || !sameTime(c.Deploy.NextAt, j.Deploy.NextAt) {
				t.Errorf("current certificate one: deploy %+v, want the job's %+v", c.Deploy, j.Deploy)
			}
		} else if c.Deploy.NotWritten() {
			t.Errorf("current certificate %s: deploy %+v, want written", c.Spec, c.Deploy)
		}
		return nil
	})
	if err != nil || seen != 1 {
		t.Fatalf("EachCurrentCertificate: %d of one, %v", seen, err)
	}
	// Written: cleared.
	if err := s.SetDeployState(t.Context(), key, certfleet.DeployState{}); err != nil {
		t.Fatal(err)
	}
	if d := mustJob(t, s, key).Deploy; d != (certfleet.DeployState{}) {
		t.Errorf("deploy state once written = %+v, want zero", d)
	}
	if got := mustJobs(t, s, certfleet.JobFilter{NotWritten: true}); len(got) != 0 {
		t.Errorf("Jobs(NotWritten) once written = %v, want none", got)
	}
	if got := mustJobs(t, s, certfleet.JobFilter{Failing: true}); len(got) != 1 || got[0].JobKey != k3 {
		t.Errorf("Jobs(Failing) once written = %v, want only %s", got, k3)
	}
	err = s.SetDeployState(t.Context(), keyOf("nope", certfleet.ECDSAP256), certfleet.DeployState{Error: "x"})
	wantCode(t, "SetDeployState(unknown job)", err, certfleet.ENOTFOUND)
}
