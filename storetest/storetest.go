// Package storetest is the behaviour contract of certfleet.Store: one suite,
// Run, that every implementation (sqlite, postgres) must pass. It tests
// through the interface only, with real time (implementations date new jobs
// with their own clock), so it fits any backend.
//
// It does not test what is specific to one backend (migrations, files,
// retention limits, crash safety): each backend's own tests do. A few
// suites look below the interface where the contract is about what the
// database holds: RunAudit through a RawExec, RunSeal (keys and secrets
// sealed at rest) through the store's sqlstore.DB seam.
//
// Import it from _test.go files only.
package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// NewSpec returns a valid spec named name, for the identifier
// name.example.org (so name must be a valid DNS label), with the given key
// types (ECDSAP256 when none), http-01 and source certfleet.SourceConfig.
func NewSpec(name string, keyTypes ...certfleet.KeyType) certfleet.CertificateSpec {
	if len(keyTypes) == 0 {
		keyTypes = []certfleet.KeyType{certfleet.ECDSAP256}
	}
	return certfleet.CertificateSpec{
		Name:        name,
		Identifiers: []certfleet.Identifier{{Type: certfleet.IdentifierDNS, Value: strings.ToLower(name) + ".example.org"}},
		KeyTypes:    slices.Clone(keyTypes),
		Challenge:   certfleet.ChallengeHTTP01,
		Source:      certfleet.SourceConfig,
	}
}

// NewSpecs returns n specs made by NewSpec, named prefix-000000 and up.
func NewSpecs(prefix string, n int, keyTypes ...certfleet.KeyType) []certfleet.CertificateSpec {
	specs := make([]certfleet.CertificateSpec, n)
	for i := range specs {
		specs[i] = NewSpec(fmt.Sprintf("%s-%06d", prefix, i), keyTypes...)
	}
	return specs
}

// NewIssuance returns an issuance of sp's key type kt for its current
// revision, with every field set. Its chain and key are placeholders, not
// parseable PEM: stores keep them as opaque bytes.
func NewIssuance(sp certfleet.CertificateSpec, kt certfleet.KeyType) certfleet.Issuance {
	now := time.Now()
	serial := fmt.Sprintf("%x", now.UnixNano())
	return certfleet.Issuance{
		Spec:         sp.Name,
		KeyType:      kt,
		SpecRevision: sp.Revision(kt),
		Identifiers:  slices.Clone(sp.Identifiers),
		Serial:       serial,
		Fingerprint:  strings.Repeat("ab", 32),
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		ChainPEM:     []byte("-----BEGIN CERTIFICATE-----\nleaf " + serial + "\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nintermediate\n-----END CERTIFICATE-----\n"),
		KeyPEM:       []byte("-----BEGIN PRIVATE KEY-----\nkey " + serial + "\n-----END PRIVATE KEY-----\n"),
		ARICertID:    "aaaa.bbbb" + serial,
		CA:           "https://ca.example/dir",
		AccountURL:   "https://ca.example/acct/1",
		OrderURL:     "https://ca.example/order/" + serial,
		CertURL:      "https://ca.example/cert/" + serial,
		IssuedAt:     now,
	}
}

// Run runs the contract suite. newStore must return a new, empty, open
// store for each call and close it when t ends.
func Run(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore func(t *testing.T) certfleet.Store)
	}{
		{"SyncSpecs/Add", testSyncAdd},
		{"SyncSpecs/Unchanged", testSyncUnchanged},
		{"SyncSpecs/RemoveKeyType", testSyncRemoveKeyType},
		{"SyncSpecs/Withdraw", testSyncWithdraw},
		{"SyncSpecs/OtherSourceUntouched", testSyncOtherSource},
		{"SyncSpecs/Revision", testSyncRevision},
		{"SyncSpecs/ChangedWhileLeased", testSyncChangedWhileLeased},
		{"SyncSpecs/Invalid", testSyncInvalid},
		{"Specs", testSpecs},
		{"ClaimDue/Eligibility", testClaimEligibility},
		{"ClaimDue/LimitAndOrder", testClaimLimitOrder},
		{"ClaimDue/Concurrent", testClaimConcurrent},
		{"Lease/Lost", testLeaseLost},
		{"Lease/NotFound", testLeaseNotFound},
		{"Lease/Extend", testExtendLease},
		{"Lease/Release", testReleaseLease},
		{"FailJob", testFailJob},
		{"MarkPlacing", testMarkPlacing},
		{"CompleteIssuance", testCompleteIssuance},
		{"Reschedule", testReschedule},
		{"PackDelay", testPackDelay},
		{"RetryNow", testRetryNow},
		{"RenewNow", testRenewNow},
		{"DeployState", testDeployState},
		{"NextDue", testNextDue},
		{"Jobs", testJobs},
		{"Archive", testArchive},
		{"Accounts", testAccounts},
		{"Accounts/Race", testAccountRace},
		{"Challenges", testChallenges},
		{"Challenges/List", testChallengeList},
		{"NotFound", testNotFound},
		{"Waiting", testWaiting},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
	t.Run("Accounts/Replace", func(t *testing.T) { testAccountReplace(t, newStore) })
}

// Helpers.

const leaseTime = time.Minute

// timeSlack is the precision a store must keep: one millisecond.
const timeSlack = time.Millisecond

func mustSync(t *testing.T, s certfleet.Store, source string, specs ...certfleet.CertificateSpec) certfleet.SyncResult {
	t.Helper()
	res, err := s.SyncSpecs(t.Context(), source, specs)
	if err != nil {
		t.Fatalf("SyncSpecs(%s): %v", source, err)
	}
	return res
}

func mustJob(t *testing.T, s certfleet.Store, key certfleet.JobKey) certfleet.Job {
	t.Helper()
	j, err := s.Job(t.Context(), key)
	if err != nil {
		t.Fatalf("Job(%s): %v", key, err)
	}
	return j
}

func mustJobs(t *testing.T, s certfleet.Store, f certfleet.JobFilter) []certfleet.Job {
	t.Helper()
	jobs, err := s.Jobs(t.Context(), f)
	if err != nil {
		t.Fatalf("Jobs(%+v): %v", f, err)
	}
	return jobs
}

func mustClaim(t *testing.T, s certfleet.Store, owner string, now time.Time, limit int) []certfleet.Job {
	t.Helper()
	jobs, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: owner, Now: now, Lease: leaseTime, Limit: limit})
	if err != nil {
		t.Fatalf("ClaimDue(%s): %v", owner, err)
	}
	return jobs
}

// mustClaimKey claims the due job key as owner: it claims every due job
// and releases the others.
func mustClaimKey(t *testing.T, s certfleet.Store, owner string, key certfleet.JobKey) certfleet.Job {
	t.Helper()
	var (
		found certfleet.Job
		ok    bool
	)
	for _, j := range mustClaim(t, s, owner, time.Now(), 1000) {
		if j.JobKey == key {
			found, ok = j, true
			continue
		}
		if err := s.ReleaseLease(t.Context(), j.JobKey, owner); err != nil {
			t.Fatalf("ReleaseLease(%s): %v", j.JobKey, err)
		}
	}
	if !ok {
		t.Fatalf("ClaimDue(%s): job %s not claimed", owner, key)
	}
	return found
}

// mustComplete claims key and completes an issuance for sp, next due in 30 days.
func mustComplete(t *testing.T, s certfleet.Store, sp certfleet.CertificateSpec, kt certfleet.KeyType) certfleet.Issuance {
	t.Helper()
	key := certfleet.JobKey{Spec: sp.Name, KeyType: kt}
	mustClaimKey(t, s, "owner-a", key)
	iss, err := s.CompleteIssuance(t.Context(), "owner-a", NewIssuance(sp, kt),
		certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)}, certfleet.Attempt{Instance: "owner-a"})
	if err != nil {
		t.Fatalf("CompleteIssuance(%s): %v", key, err)
	}
	return iss
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := certfleet.ErrorCode(err); got != code {
		t.Errorf("%s: error %v has code %q, want %q", what, err, got, code)
	}
}

// sameTime reports whether got is want in UTC to within timeSlack (zero
// times must stay zero).
func sameTime(got, want time.Time) bool {
	if want.IsZero() || got.IsZero() {
		return want.IsZero() && got.IsZero()
	}
	d := got.Sub(want)
	return got.Location() == time.UTC && d < timeSlack && d > -timeSlack
}

func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Errorf("%s = %v, want %v (UTC, within %v)", what, got, want, timeSlack)
	}
}

func isDue(j certfleet.Job) bool { return !j.NextAt.After(time.Now()) }

func keyOf(name string, kt certfleet.KeyType) certfleet.JobKey {
	return certfleet.JobKey{Spec: name, KeyType: kt}
}

// checkIssuance compares every field of got with want.
func checkIssuance(t *testing.T, got, want certfleet.Issuance) {
	t.Helper()
	checkTime(t, "NotBefore", got.NotBefore, want.NotBefore)
	checkTime(t, "NotAfter", got.NotAfter, want.NotAfter)
	checkTime(t, "IssuedAt", got.IssuedAt, want.IssuedAt)
	got.NotBefore, got.NotAfter, got.IssuedAt = want.NotBefore, want.NotAfter, want.IssuedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("issuance:\n got %+v\nwant %+v", got, want)
	}
}
