package storetest

// ClaimDue and the leases it hands out: who may claim what, in which order,
// concurrently, and the owner fencing of every leased operation.

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// ClaimDue.

func testClaimEligibility(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	key := keyOf("one", certfleet.ECDSAP256)
	tests := []struct {
		name    string
		setup   func(t *testing.T, s certfleet.Store)
		at      time.Duration // claim at now+at
		wantJob bool
	}{
		{"due", func(t *testing.T, s certfleet.Store) {}, 0, true},
		{"not yet due", func(t *testing.T, s certfleet.Store) {
			mustClaimKey(t, s, "owner-a", key)
			if err := s.Reschedule(t.Context(), key, "owner-a", certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}, 0, false},
		{"disabled", func(t *testing.T, s certfleet.Store) {
			mustSync(t, s, certfleet.SourceConfig)
		}, 0, false},
		{"leased", func(t *testing.T, s certfleet.Store) {
			mustClaimKey(t, s, "owner-a", key)
		}, leaseTime / 2, false},
		{"lease expired", func(t *testing.T, s certfleet.Store) {
			mustClaimKey(t, s, "owner-a", key)
		}, 2 * leaseTime, true},
		{"released", func(t *testing.T, s certfleet.Store) {
			mustClaimKey(t, s, "owner-a", key)
			if err := s.ReleaseLease(t.Context(), key, "owner-a"); err != nil {
				t.Fatal(err)
			}
		}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
			tc.setup(t, s)
			now := time.Now().Add(tc.at)
			got := mustClaim(t, s, "owner-b", now, 10)
			if !tc.wantJob {
				if len(got) != 0 {
					t.Errorf("claimed %+v, want nothing", got)
				}
				return
			}
			if len(got) != 1 || got[0].JobKey != key {
				t.Fatalf("claimed %+v, want %s", got, key)
			}
			if got[0].LeaseOwner != "owner-b" {
				t.Errorf("claimed job LeaseOwner = %q, want owner-b", got[0].LeaseOwner)
			}
			checkTime(t, "claimed job LeaseUntil", got[0].LeaseUntil, now.Add(leaseTime))
			if stored := mustJob(t, s, key); stored.LeaseOwner != "owner-b" || !sameTime(stored.LeaseUntil, now.Add(leaseTime)) {
				t.Errorf("stored lease = %q until %v, want owner-b until %v", stored.LeaseOwner, stored.LeaseUntil, now.Add(leaseTime))
			}
		})
	}
}

func testClaimLimitOrder(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	specs := NewSpecs("job", 5)
	mustSync(t, s, certfleet.SourceConfig, specs...)
	if n := len(mustClaim(t, s, "owner-a", time.Now(), 5)); n != 5 {
		t.Fatalf("claimed %d, want 5", n)
	}
	// Due times: job-000000 newest ... job-000004 oldest.
	base := time.Now().Add(-time.Minute)
	for i, sp := range specs {
		key := keyOf(sp.Name, certfleet.ECDSAP256)
		if err := s.Reschedule(t.Context(), key, "owner-a", certfleet.ScheduleUpdate{NextAt: base.Add(-time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for _, limit := range []int{2, 2, 2} {
		got := mustClaim(t, s, "owner-b", time.Now(), limit)
		if len(got) > limit {
			t.Errorf("ClaimDue(limit %d) returned %d jobs", limit, len(got))
		}
		for _, j := range got {
			order = append(order, j.Spec)
		}
	}
	want := []string{"job-000004", "job-000003", "job-000002", "job-000001", "job-000000"}
	if !slices.Equal(order, want) {
		t.Errorf("claim order = %v, want oldest due first %v", order, want)
	}
	if got := mustClaim(t, s, "owner-c", time.Now(), 0); len(got) != 0 {
		t.Errorf("ClaimDue(limit 0) = %+v, want none", got)
	}
}

func testClaimConcurrent(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpecs("c", 100, certfleet.RSA2048, certfleet.ECDSAP256)...)
	const workers = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards claims, errs
		claims = make(map[certfleet.JobKey][]string)
		errs   []error
	)
	now := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("worker-%d", w)
			// Bounded: a store that hands out leased jobs again must fail
			// this test, not hang it.
			for range 200 {
				jobs, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: owner, Now: now, Lease: time.Hour, Limit: 3})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for _, j := range jobs {
					claims[j.JobKey] = append(claims[j.JobKey], owner)
					if j.LeaseOwner != owner {
						errs = append(errs, fmt.Errorf("%s claimed %s but its lease is %q's", owner, j.JobKey, j.LeaseOwner))
					}
				}
				mu.Unlock()
				if err != nil || len(jobs) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(claims) != 200 {
		t.Errorf("%d distinct jobs claimed, want 200", len(claims))
	}
	for key, owners := range claims {
		if len(owners) != 1 {
			t.Errorf("job %s claimed %d times: %v", key, len(owners), owners)
		}
	}
}

// Leases.

// leaseOps are the owner-fenced methods, each applied to key as owner.
var leaseOps = []struct {
	name string
	do   func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error
}{
	{"ExtendLease", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		return s.ExtendLease(ctx, key, owner, time.Now().Add(time.Hour))
	}},
	{"SetPendingOrder", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		return s.SetPendingOrder(ctx, key, owner, "https://ca.example/order/1", []byte("key"))
	}},
	{"MarkPlacing", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		return s.MarkPlacing(ctx, key, owner, certfleet.OrderPlacing{At: time.Now(), Account: "https://ca.example/acct/1"})
	}},
	{"CompleteIssuance", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		iss := NewIssuance(NewSpec(key.Spec, key.KeyType), key.KeyType)
		_, err := s.CompleteIssuance(ctx, owner, iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)}, certfleet.Attempt{})
		return err
	}},
	{"FailJob", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		return s.FailJob(ctx, key, owner, certfleet.Attempt{Error: "boom"}, time.Now().Add(time.Hour))
	}},
	{"Reschedule", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		return s.Reschedule(ctx, key, owner, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)})
	}},
	{"ReleaseLease", func(ctx context.Context, s certfleet.Store, key certfleet.JobKey, owner string) error {
		return s.ReleaseLease(ctx, key, owner)
	}},
}

func testLeaseLost(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	for _, op := range leaseOps {
		t.Run(op.name, func(t *testing.T) {
			s := newStore(t)
			mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
			key := keyOf("one", certfleet.ECDSAP256)
			mustClaimKey(t, s, "owner-a", key)
			// The lease expires and owner-b takes the job over.
			later := time.Now().Add(2 * leaseTime)
			if got := mustClaim(t, s, "owner-b", later, 10); len(got) != 1 {
				t.Fatalf("take-over claimed %d jobs, want 1", len(got))
			}
			before := mustJob(t, s, key)
			err := op.do(t.Context(), s, key, "owner-a")
			wantCode(t, op.name+" by the old owner", err, certfleet.ELEASELOST)
			if after := mustJob(t, s, key); !reflect.DeepEqual(after, before) {
				t.Errorf("%s by the old owner changed the job:\n got %+v\nwant %+v", op.name, after, before)
			}
			if iss, err := s.Issuances(t.Context(), certfleet.IssuanceFilter{}); err != nil || len(iss) != 0 {
				t.Errorf("archive after a fenced-off write: %d issuances, %v; want none", len(iss), err)
			}
			if a, err := s.Attempts(t.Context(), key, 0); err != nil || len(a) != 0 {
				t.Errorf("attempts after a fenced-off write: %+v, %v; want none", a, err)
			}
			// The new owner still can.
			if err := op.do(t.Context(), s, key, "owner-b"); err != nil {
				t.Errorf("%s by the new owner: %v", op.name, err)
			}
		})
	}
}

func testLeaseNotFound(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
	for _, op := range leaseOps {
		key := keyOf("missing", certfleet.ECDSAP256)
		err := op.do(t.Context(), s, key, "owner-a")
		wantCode(t, op.name+" of a missing job", err, certfleet.ENOTFOUND)
		if !strings.Contains(certfleet.ErrorMessage(err), "missing") {
			t.Errorf("%s: message %q does not name the job", op.name, certfleet.ErrorMessage(err))
		}
	}
}

func testExtendLease(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
	key := keyOf("one", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	until := time.Now().Add(10 * leaseTime)
	if err := s.ExtendLease(t.Context(), key, "owner-a", until); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	checkTime(t, "LeaseUntil", j.LeaseUntil, until)
	if got := mustClaim(t, s, "owner-b", time.Now().Add(5*leaseTime), 10); len(got) != 0 {
		t.Errorf("claimed a job whose lease was extended: %+v", got)
	}
}

func testReleaseLease(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
	key := keyOf("one", certfleet.ECDSAP256)
	claimed := mustClaimKey(t, s, "owner-a", key)
	if err := s.ReleaseLease(t.Context(), key, "owner-a"); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	if j.LeaseOwner != "" || !j.LeaseUntil.IsZero() || !j.NextAt.Equal(claimed.NextAt) {
		t.Errorf("after release: %+v; want no lease, NextAt %v unchanged", j, claimed.NextAt)
	}
	if got := mustClaim(t, s, "owner-b", time.Now(), 10); len(got) != 1 {
		t.Errorf("released job not claimable: %+v", got)
	}
}
