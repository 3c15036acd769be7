// Package storetest is the behaviour contract of certfleet.Store: one suite,
// Run, that every implementation (sqlite, postgres) must pass. It tests
// through the interface only, with real time (implementations date new jobs
// with their own clock), so it fits any backend.
//
// It does not test what is specific to one backend (migrations, files,
// retention limits, crash safety): each backend's own tests do.
//
// Import it from _test.go files only.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
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
		{"CompleteIssuance", testCompleteIssuance},
		{"Reschedule", testReschedule},
		{"RetryNow", testRetryNow},
		{"NextDue", testNextDue},
		{"Jobs", testJobs},
		{"Archive", testArchive},
		{"Accounts", testAccounts},
		{"Accounts/Race", testAccountRace},
		{"Challenges", testChallenges},
		{"NotFound", testNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
	t.Run("Accounts/Replace", func(t *testing.T) { testAccountReplace(t, newStore) })
}

// testAccountReplace checks the optional certfleet.AccountReplacer: a
// compare-and-swap on the stored account's URL.
func testAccountReplace(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	r, ok := s.(certfleet.AccountReplacer)
	if !ok {
		t.Skip("the store does not implement certfleet.AccountReplacer")
	}
	ctx := t.Context()
	acct := func(url string) certfleet.Account {
		return certfleet.Account{CA: "https://ca.example/dir", Name: "default", KeyPEM: []byte("key of " + url), URL: url}
	}
	if _, err := s.CreateAccount(ctx, acct("https://ca.example/acct/1")); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReplaceAccount(ctx, certfleet.Account{URL: "https://ca.example/acct/1"}, acct("https://ca.example/acct/2"))
	if err != nil || got.URL != "https://ca.example/acct/2" || string(got.KeyPEM) != "key of https://ca.example/acct/2" {
		t.Fatalf("first replace = %q, %v; want account 2", got.URL, err)
	}
	// A racing instance that also saw account 1 as stale gets account 2.
	got, err = r.ReplaceAccount(ctx, certfleet.Account{URL: "https://ca.example/acct/1"}, acct("https://ca.example/acct/3"))
	if err != nil || got.URL != "https://ca.example/acct/2" {
		t.Fatalf("second replace of the same stale account = %q, %v; want the first replacement kept", got.URL, err)
	}
	if stored, err := s.Account(ctx, "https://ca.example/dir", "default"); err != nil || stored.URL != "https://ca.example/acct/2" {
		t.Fatalf("stored = %q, %v", stored.URL, err)
	}
	if _, err := r.ReplaceAccount(ctx, certfleet.Account{URL: "x"}, certfleet.Account{CA: "https://other.example/dir", Name: "default", KeyPEM: []byte("k"), URL: "u"}); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("replace of an unknown account: %v, want ENOTFOUND", err)
	}
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

// SyncSpecs.

func testSyncAdd(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	before := time.Now()
	sp := NewSpec("web", certfleet.RSA2048, certfleet.ECDSAP256)
	res := mustSync(t, s, certfleet.SourceConfig, sp)
	if !reflect.DeepEqual(res.Added, []string{"web"}) || len(res.Changed) != 0 || len(res.Disabled) != 0 || res.Unchanged != 0 {
		t.Errorf("SyncSpecs = %+v, want web added", res)
	}
	got, err := s.Spec(t.Context(), "web")
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	if !reflect.DeepEqual(got, sp) {
		t.Errorf("Spec = %+v, want %+v", got, sp)
	}
	jobs := mustJobs(t, s, certfleet.JobFilter{})
	if len(jobs) != 2 {
		t.Fatalf("got %d jobs, want 2: %+v", len(jobs), jobs)
	}
	for _, j := range jobs {
		if j.Spec != "web" || j.Disabled || j.CurrentID != 0 || j.LeaseOwner != "" || j.Failures != 0 {
			t.Errorf("new job %+v: want enabled, unleased, without issuance", j)
		}
		if j.NextAt.Before(before.Add(-timeSlack)) || !isDue(j) {
			t.Errorf("job %s NextAt = %v, want due at once (synced at %v)", j.JobKey, j.NextAt, before)
		}
	}
	claimed := mustClaim(t, s, "owner-a", time.Now(), 10)
	if len(claimed) != 2 {
		t.Errorf("claimed %d jobs after adding a dual spec, want 2", len(claimed))
	}
}

func testSyncUnchanged(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	specs := []certfleet.CertificateSpec{NewSpec("a", certfleet.RSA2048, certfleet.ECDSAP256), NewSpec("b")}
	mustSync(t, s, certfleet.SourceConfig, specs...)
	// Give one job history, so "nothing changes" covers scheduled jobs too.
	mustComplete(t, s, specs[1], certfleet.ECDSAP256)
	beforeJobs := mustJobs(t, s, certfleet.JobFilter{IncludeDisabled: true})
	beforeSpecs, err := s.Specs(t.Context(), certfleet.SpecFilter{IncludeDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * timeSlack) // a store that rewrote NextAt with its clock would now differ
	res := mustSync(t, s, certfleet.SourceConfig, specs...)
	if len(res.Added)+len(res.Changed)+len(res.Disabled) != 0 || res.Unchanged != 2 {
		t.Errorf("re-sync = %+v, want 2 unchanged", res)
	}
	if got := mustJobs(t, s, certfleet.JobFilter{IncludeDisabled: true}); !reflect.DeepEqual(got, beforeJobs) {
		t.Errorf("re-sync changed jobs:\n got %+v\nwant %+v", got, beforeJobs)
	}
	if got, _ := s.Specs(t.Context(), certfleet.SpecFilter{IncludeDisabled: true}); !reflect.DeepEqual(got, beforeSpecs) {
		t.Errorf("re-sync changed specs:\n got %+v\nwant %+v", got, beforeSpecs)
	}
}

func testSyncRemoveKeyType(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("dual", certfleet.RSA2048, certfleet.ECDSAP256)
	mustSync(t, s, certfleet.SourceConfig, sp)
	sp.KeyTypes = []certfleet.KeyType{certfleet.ECDSAP256}
	res := mustSync(t, s, certfleet.SourceConfig, sp)
	if !reflect.DeepEqual(res.Changed, []string{"dual"}) {
		t.Errorf("SyncSpecs = %+v, want dual changed", res)
	}
	if j := mustJob(t, s, keyOf("dual", certfleet.RSA2048)); !j.Disabled {
		t.Errorf("job of removed key type: Disabled = false, want true")
	}
	if j := mustJob(t, s, keyOf("dual", certfleet.ECDSAP256)); j.Disabled {
		t.Errorf("job of kept key type: Disabled = true, want false")
	}
	if got := mustJobs(t, s, certfleet.JobFilter{}); len(got) != 1 || got[0].KeyType != certfleet.ECDSAP256 {
		t.Errorf("Jobs() = %+v, want only the ECDSA job", got)
	}
	for _, j := range mustClaim(t, s, "owner-a", time.Now().Add(time.Hour), 10) {
		if j.KeyType == certfleet.RSA2048 {
			t.Errorf("claimed the disabled RSA job")
		}
	}
	// Adding the key type back enables the job again.
	sp.KeyTypes = []certfleet.KeyType{certfleet.RSA2048, certfleet.ECDSAP256}
	mustSync(t, s, certfleet.SourceConfig, sp)
	if j := mustJob(t, s, keyOf("dual", certfleet.RSA2048)); j.Disabled {
		t.Errorf("job of re-added key type: Disabled = true, want false")
	}
}

func testSyncWithdraw(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	a, b := NewSpec("a"), NewSpec("b", certfleet.RSA2048, certfleet.ECDSAP384)
	mustSync(t, s, certfleet.SourceConfig, a, b)
	iss := mustComplete(t, s, b, certfleet.RSA2048)
	res := mustSync(t, s, certfleet.SourceConfig, a)
	if !reflect.DeepEqual(res.Disabled, []string{"b"}) || res.Unchanged != 1 {
		t.Errorf("SyncSpecs = %+v, want b disabled, a unchanged", res)
	}
	got, err := s.Spec(t.Context(), "b")
	if err != nil || !got.Disabled {
		t.Errorf("Spec(b) = %+v, %v; want it kept, disabled", got, err)
	}
	for _, kt := range b.KeyTypes {
		if j := mustJob(t, s, keyOf("b", kt)); !j.Disabled {
			t.Errorf("job %s of withdrawn spec: Disabled = false", j.JobKey)
		}
	}
	if _, err := s.Issuance(t.Context(), iss.ID); err != nil {
		t.Errorf("archive of withdrawn spec: Issuance(%d): %v", iss.ID, err)
	}
	if claimed := mustClaim(t, s, "owner-b", time.Now().Add(365*24*time.Hour), 10); len(claimed) != 1 || claimed[0].Spec != "a" {
		t.Errorf("claimed %+v, want only a's job", claimed)
	}
	// Declaring it again re-enables it.
	res = mustSync(t, s, certfleet.SourceConfig, a, b)
	if !reflect.DeepEqual(res.Changed, []string{"b"}) {
		t.Errorf("re-declare: SyncSpecs = %+v, want b changed", res)
	}
	if got, _ := s.Spec(t.Context(), "b"); got.Disabled {
		t.Errorf("re-declared spec still disabled")
	}
	if j := mustJob(t, s, keyOf("b", certfleet.ECDSAP384)); j.Disabled {
		t.Errorf("job of re-declared spec still disabled")
	}
}

func testSyncOtherSource(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	api := NewSpec("api-one")
	api.Source = certfleet.SourceAPI
	mustSync(t, s, certfleet.SourceAPI, api)
	before := mustJobs(t, s, certfleet.JobFilter{Spec: "api-one"})
	mustSync(t, s, certfleet.SourceConfig, NewSpec("conf"))
	res := mustSync(t, s, certfleet.SourceConfig)
	if !reflect.DeepEqual(res.Disabled, []string{"conf"}) {
		t.Errorf("SyncSpecs(config, none) = %+v, want only conf disabled", res)
	}
	got, err := s.Spec(t.Context(), "api-one")
	if err != nil || got.Disabled || got.Source != certfleet.SourceAPI {
		t.Errorf("Spec(api-one) = %+v, %v; want enabled, source api", got, err)
	}
	if after := mustJobs(t, s, certfleet.JobFilter{Spec: "api-one"}); !reflect.DeepEqual(after, before) {
		t.Errorf("jobs of the api source changed:\n got %+v\nwant %+v", after, before)
	}
	// A name another source still declares cannot be taken over.
	_, err = s.SyncSpecs(t.Context(), certfleet.SourceConfig, []certfleet.CertificateSpec{NewSpec("api-one")})
	wantCode(t, "config declaring api-one", err, certfleet.ECONFLICT)
	if got, _ := s.Spec(t.Context(), "api-one"); got.Source != certfleet.SourceAPI || got.Disabled {
		t.Errorf("after the conflict: Spec(api-one) = %+v, want it untouched", got)
	}
	// Once the api withdraws it, the config may declare it.
	mustSync(t, s, certfleet.SourceAPI)
	res = mustSync(t, s, certfleet.SourceConfig, NewSpec("api-one"))
	if !reflect.DeepEqual(res.Changed, []string{"api-one"}) {
		t.Errorf("take-over: SyncSpecs = %+v, want api-one changed", res)
	}
	if got, _ := s.Spec(t.Context(), "api-one"); got.Source != certfleet.SourceConfig || got.Disabled {
		t.Errorf("after take-over: Spec(api-one) = %+v, want source config, enabled", got)
	}
	if j := mustJob(t, s, keyOf("api-one", certfleet.ECDSAP256)); j.Disabled {
		t.Errorf("after take-over: job disabled")
	}
}

func testSyncRevision(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	tests := []struct {
		name    string
		change  func(sp *certfleet.CertificateSpec)
		wantDue bool
	}{
		{"identifiers", func(sp *certfleet.CertificateSpec) {
			sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "www.example.org"})
		}, true},
		{"profile", func(sp *certfleet.CertificateSpec) { sp.Profile = "shortlived" }, true},
		{"renewal policy only", func(sp *certfleet.CertificateSpec) { sp.RenewBefore = 240 * time.Hour }, false},
		{"identifier order only", func(sp *certfleet.CertificateSpec) { slices.Reverse(sp.Identifiers) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			sp := NewSpec("rev")
			sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "alt.example.org"})
			mustSync(t, s, certfleet.SourceConfig, sp)
			iss := mustComplete(t, s, sp, certfleet.ECDSAP256)
			key := keyOf("rev", certfleet.ECDSAP256)
			before := mustJob(t, s, key)
			if isDue(before) || before.CurrentRevision != iss.SpecRevision {
				t.Fatalf("after issuance: job %+v, want not due, revision %s", before, iss.SpecRevision)
			}
			tc.change(&sp)
			res := mustSync(t, s, certfleet.SourceConfig, sp)
			if !reflect.DeepEqual(res.Changed, []string{"rev"}) {
				t.Errorf("SyncSpecs = %+v, want rev changed", res)
			}
			after := mustJob(t, s, key)
			if got := isDue(after); got != tc.wantDue {
				t.Errorf("due after change = %v (NextAt %v), want %v", got, after.NextAt, tc.wantDue)
			}
			if !tc.wantDue && !after.NextAt.Equal(before.NextAt) {
				t.Errorf("NextAt = %v, want unchanged %v", after.NextAt, before.NextAt)
			}
		})
	}
}

// testSyncChangedWhileLeased: a spec changed while its job is being worked
// on must not be lost when the worker completes with the old revision.
func testSyncChangedWhileLeased(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("busy")
	mustSync(t, s, certfleet.SourceConfig, sp)
	key := keyOf("busy", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	old := NewIssuance(sp, certfleet.ECDSAP256)
	sp.Identifiers = append(sp.Identifiers, certfleet.Identifier{Type: certfleet.IdentifierDNS, Value: "new.example.org"})
	mustSync(t, s, certfleet.SourceConfig, sp)
	if _, err := s.CompleteIssuance(t.Context(), "owner-a", old,
		certfleet.ScheduleUpdate{NextAt: time.Now().Add(30 * 24 * time.Hour)}, certfleet.Attempt{}); err != nil {
		t.Fatalf("CompleteIssuance: %v", err)
	}
	if j := mustJob(t, s, key); !isDue(j) || j.CurrentRevision != old.SpecRevision {
		t.Errorf("job after completing an outdated revision: NextAt %v, revision %s; want due now, revision %s",
			j.NextAt, j.CurrentRevision, old.SpecRevision)
	}
}

func testSyncInvalid(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	tests := []struct {
		name  string
		specs []certfleet.CertificateSpec
	}{
		{"no identifiers", []certfleet.CertificateSpec{func() certfleet.CertificateSpec {
			sp := NewSpec("x")
			sp.Identifiers = nil
			return sp
		}()}},
		{"bad name", []certfleet.CertificateSpec{NewSpec("../etc")}},
		{"declared twice", []certfleet.CertificateSpec{NewSpec("twice"), NewSpec("twice")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			mustSync(t, s, certfleet.SourceConfig, NewSpec("keep"))
			specs := append([]certfleet.CertificateSpec{NewSpec("other")}, tc.specs...)
			_, err := s.SyncSpecs(t.Context(), certfleet.SourceConfig, specs)
			wantCode(t, "SyncSpecs", err, certfleet.EINVALID)
			got, err := s.Specs(t.Context(), certfleet.SpecFilter{IncludeDisabled: true})
			if err != nil || len(got) != 1 || got[0].Name != "keep" || got[0].Disabled {
				t.Errorf("after a rejected sync: Specs = %+v, %v; want keep alone, enabled", got, err)
			}
		})
	}
}

func testSpecs(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("c"), NewSpec("a"), NewSpec("gone"))
	api := NewSpec("b")
	api.Source = certfleet.SourceAPI
	mustSync(t, s, certfleet.SourceAPI, api)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("c"), NewSpec("a"))
	tests := []struct {
		name string
		f    certfleet.SpecFilter
		want []string
	}{
		{"enabled", certfleet.SpecFilter{}, []string{"a", "b", "c"}},
		{"all", certfleet.SpecFilter{IncludeDisabled: true}, []string{"a", "b", "c", "gone"}},
		{"source", certfleet.SpecFilter{Source: certfleet.SourceAPI}, []string{"b"}},
		{"name", certfleet.SpecFilter{Name: "c"}, []string{"c"}},
		{"disabled name hidden", certfleet.SpecFilter{Name: "gone"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := s.Specs(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, sp := range specs {
				got = append(got, sp.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Specs(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}

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

// Outcomes.

func testFailJob(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("one"))
	key := keyOf("one", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	keyPEM := []byte("-----BEGIN PRIVATE KEY-----\npending\n-----END PRIVATE KEY-----\n")
	if err := s.SetPendingOrder(t.Context(), key, "owner-a", "https://ca.example/order/7", keyPEM); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); j.PendingOrderURL != "https://ca.example/order/7" || string(j.PendingKeyPEM) != string(keyPEM) {
		t.Errorf("pending order = %q, key %q; want it stored", j.PendingOrderURL, j.PendingKeyPEM)
	}
	for i := 1; i <= 2; i++ {
		if i > 1 {
			mustClaimKey(t, s, "owner-a", key)
		}
		started := time.Now().Add(-time.Second)
		a := certfleet.Attempt{
			Instance: "owner-a", StartedAt: started, FinishedAt: time.Now(),
			Outcome: certfleet.OutcomeFailed, OrderURL: "https://ca.example/order/7",
			Error: fmt.Sprintf("failure %d", i), ProblemType: "urn:ietf:params:acme:error:connection",
		}
		nextAt := time.Now().Add(-time.Millisecond * 10) // due again at once
		if err := s.FailJob(t.Context(), key, "owner-a", a, nextAt); err != nil {
			t.Fatalf("FailJob %d: %v", i, err)
		}
		j := mustJob(t, s, key)
		if j.Failures != i || j.LastError != a.Error || j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
			t.Errorf("after failure %d: Failures %d, LastError %q, lease %q; want %d, %q, released",
				i, j.Failures, j.LastError, j.LeaseOwner, i, a.Error)
		}
		checkTime(t, "NextAt", j.NextAt, nextAt)
		checkTime(t, "LastErrorAt", j.LastErrorAt, a.FinishedAt)
		if j.PendingOrderURL != "https://ca.example/order/7" || string(j.PendingKeyPEM) != string(keyPEM) {
			t.Errorf("FailJob dropped the pending order: %q", j.PendingOrderURL)
		}
		attempts, err := s.Attempts(t.Context(), key, 10)
		if err != nil || len(attempts) != i {
			t.Fatalf("Attempts = %d, %v; want %d", len(attempts), err, i)
		}
		got := attempts[0]
		checkTime(t, "attempt StartedAt", got.StartedAt, a.StartedAt)
		checkTime(t, "attempt FinishedAt", got.FinishedAt, a.FinishedAt)
		if got.ID == 0 || got.JobKey != key || got.Error != a.Error || got.Outcome != certfleet.OutcomeFailed ||
			got.Instance != a.Instance || got.OrderURL != a.OrderURL || got.ProblemType != a.ProblemType {
			t.Errorf("newest attempt = %+v, want %+v", got, a)
		}
	}
	if a, _ := s.Attempts(t.Context(), key, 1); len(a) != 1 || a[0].Error != "failure 2" {
		t.Errorf("Attempts(limit 1) = %+v, want the newest only", a)
	}
	// Clearing the pending order.
	mustClaimKey(t, s, "owner-a", key)
	if err := s.SetPendingOrder(t.Context(), key, "owner-a", "", nil); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); j.PendingOrderURL != "" || len(j.PendingKeyPEM) != 0 {
		t.Errorf("after clearing: pending order %q, key of %d bytes", j.PendingOrderURL, len(j.PendingKeyPEM))
	}
}

func testCompleteIssuance(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	key := keyOf("one", certfleet.ECDSAP256)
	mustClaimKey(t, s, "owner-a", key)
	if err := s.SetPendingOrder(t.Context(), key, "owner-a", "https://ca.example/order/1", []byte("pending key")); err != nil {
		t.Fatal(err)
	}
	if err := s.FailJob(t.Context(), key, "owner-a", certfleet.Attempt{Error: "first try"}, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	mustClaimKey(t, s, "owner-a", key)

	want := NewIssuance(sp, certfleet.ECDSAP256)
	want.Replaces = 0
	next := certfleet.ScheduleUpdate{
		NextAt:     time.Now().Add(60 * 24 * time.Hour),
		ARIStart:   time.Now().Add(59 * 24 * time.Hour),
		ARIEnd:     time.Now().Add(61 * 24 * time.Hour),
		ARIRetryAt: time.Now().Add(6 * time.Hour),
	}
	attempt := certfleet.Attempt{Instance: "owner-a", StartedAt: time.Now().Add(-time.Second), FinishedAt: time.Now(),
		Outcome: certfleet.OutcomeIssued, OrderURL: want.OrderURL}
	got, err := s.CompleteIssuance(t.Context(), "owner-a", want, next, attempt)
	if err != nil {
		t.Fatalf("CompleteIssuance: %v", err)
	}
	if got.ID == 0 {
		t.Fatalf("CompleteIssuance returned ID 0")
	}
	want.ID = got.ID
	checkIssuance(t, got, want)
	stored, err := s.Issuance(t.Context(), got.ID)
	if err != nil {
		t.Fatalf("Issuance(%d): %v", got.ID, err)
	}
	checkIssuance(t, stored, want)

	j := mustJob(t, s, key)
	if j.CurrentID != got.ID || j.CurrentRevision != want.SpecRevision {
		t.Errorf("job current = %d rev %s, want %d rev %s", j.CurrentID, j.CurrentRevision, got.ID, want.SpecRevision)
	}
	if j.PendingOrderURL != "" || len(j.PendingKeyPEM) != 0 {
		t.Errorf("pending order kept after issuance: %q", j.PendingOrderURL)
	}
	if j.Failures != 0 || j.LastError != "" || !j.LastErrorAt.IsZero() {
		t.Errorf("failures kept after issuance: %d, %q at %v", j.Failures, j.LastError, j.LastErrorAt)
	}
	if j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
		t.Errorf("lease kept after issuance: %q until %v", j.LeaseOwner, j.LeaseUntil)
	}
	checkTime(t, "NextAt", j.NextAt, next.NextAt)
	checkTime(t, "ARIStart", j.ARIStart, next.ARIStart)
	checkTime(t, "ARIEnd", j.ARIEnd, next.ARIEnd)
	checkTime(t, "ARIRetryAt", j.ARIRetryAt, next.ARIRetryAt)

	attempts, err := s.Attempts(t.Context(), key, 0)
	if err != nil || len(attempts) != 2 {
		t.Fatalf("Attempts = %+v, %v; want 2", attempts, err)
	}
	if a := attempts[0]; a.Outcome != certfleet.OutcomeIssued || a.Instance != "owner-a" || a.OrderURL != want.OrderURL {
		t.Errorf("newest attempt = %+v, want the issuance", a)
	}
	if attempts[1].Error != "first try" || attempts[0].ID <= attempts[1].ID {
		t.Errorf("attempts not newest first: %+v", attempts)
	}
	if got := mustClaim(t, s, "owner-b", time.Now(), 10); len(got) != 0 {
		t.Errorf("claimed %+v right after issuance, want nothing due", got)
	}

	// CompleteIssuance without the lease leaves no trace.
	_, err = s.CompleteIssuance(t.Context(), "owner-a", NewIssuance(sp, certfleet.ECDSAP256), next, attempt)
	wantCode(t, "CompleteIssuance after release", err, certfleet.ELEASELOST)
	if all, _ := s.Issuances(t.Context(), certfleet.IssuanceFilter{}); len(all) != 1 {
		t.Errorf("archive holds %d issuances, want 1", len(all))
	}
}

func testReschedule(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	iss := mustComplete(t, s, sp, certfleet.ECDSAP256)
	key := keyOf("one", certfleet.ECDSAP256)
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	mustClaimKey(t, s, "owner-a", key)
	u := certfleet.ScheduleUpdate{NextAt: time.Now().Add(48 * time.Hour), ARIStart: time.Now().Add(47 * time.Hour),
		ARIEnd: time.Now().Add(49 * time.Hour), ARIRetryAt: time.Now().Add(time.Hour)}
	if err := s.Reschedule(t.Context(), key, "owner-a", u); err != nil {
		t.Fatal(err)
	}
	j := mustJob(t, s, key)
	checkTime(t, "NextAt", j.NextAt, u.NextAt)
	checkTime(t, "ARIStart", j.ARIStart, u.ARIStart)
	checkTime(t, "ARIEnd", j.ARIEnd, u.ARIEnd)
	checkTime(t, "ARIRetryAt", j.ARIRetryAt, u.ARIRetryAt)
	if j.LeaseOwner != "" || j.CurrentID != iss.ID {
		t.Errorf("after Reschedule: lease %q, current %d; want released, %d", j.LeaseOwner, j.CurrentID, iss.ID)
	}
}

func testRetryNow(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	sp := NewSpec("one")
	mustSync(t, s, certfleet.SourceConfig, sp)
	mustComplete(t, s, sp, certfleet.ECDSAP256)
	key := keyOf("one", certfleet.ECDSAP256)
	if j := mustJob(t, s, key); isDue(j) {
		t.Fatalf("job due right after issuance")
	}
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if j := mustJob(t, s, key); !isDue(j) {
		t.Errorf("after RetryNow: NextAt %v, want due", j.NextAt)
	}
	err := s.RetryNow(t.Context(), keyOf("missing", certfleet.ECDSAP256))
	wantCode(t, "RetryNow(missing)", err, certfleet.ENOTFOUND)
}

func testNextDue(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	if _, ok, err := s.NextDue(t.Context()); err != nil || ok {
		t.Errorf("NextDue of an empty store = ok %v, %v; want none", ok, err)
	}
	a, b, c := NewSpec("a"), NewSpec("b"), NewSpec("c")
	mustSync(t, s, certfleet.SourceConfig, a, b, c)
	mustClaim(t, s, "owner-a", time.Now(), 10)
	base := time.Now().Add(time.Hour)
	at := map[string]time.Time{"a": base, "b": base.Add(time.Hour), "c": base.Add(2 * time.Hour)}
	for name, when := range at {
		if err := s.Reschedule(t.Context(), keyOf(name, certfleet.ECDSAP256), "owner-a", certfleet.ScheduleUpdate{NextAt: when}); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.NextDue(t.Context())
	if err != nil || !ok {
		t.Fatalf("NextDue = ok %v, %v", ok, err)
	}
	checkTime(t, "NextDue", got, at["a"])
	// Withdrawing a leaves b the earliest.
	mustSync(t, s, certfleet.SourceConfig, b, c)
	got, ok, err = s.NextDue(t.Context())
	if err != nil || !ok {
		t.Fatalf("NextDue = ok %v, %v", ok, err)
	}
	checkTime(t, "NextDue after disabling a", got, at["b"])
}

func testJobs(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("b", certfleet.RSA2048, certfleet.ECDSAP256), NewSpec("a", certfleet.ECDSAP384))
	mustSync(t, s, certfleet.SourceConfig, NewSpec("b", certfleet.RSA2048, certfleet.ECDSAP256))
	claimed, err := s.ClaimDue(t.Context(), certfleet.ClaimRequest{Owner: "o", Now: time.Now(), Lease: time.Minute, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d jobs", err, len(claimed))
	}
	tests := []struct {
		name string
		f    certfleet.JobFilter
		want []string
	}{
		{"leased", certfleet.JobFilter{Leased: true}, []string{claimed[0].JobKey.String()}},
		{"enabled", certfleet.JobFilter{}, []string{"b/ecdsa-p256", "b/rsa2048"}},
		{"all", certfleet.JobFilter{IncludeDisabled: true}, []string{"a/ecdsa-p384", "b/ecdsa-p256", "b/rsa2048"}},
		{"spec", certfleet.JobFilter{Spec: "b"}, []string{"b/ecdsa-p256", "b/rsa2048"}},
		{"disabled spec", certfleet.JobFilter{Spec: "a"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, j := range mustJobs(t, s, tc.f) {
				got = append(got, j.JobKey.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Jobs(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}

// Archive.

func testArchive(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	a, b := NewSpec("a", certfleet.RSA2048, certfleet.ECDSAP256), NewSpec("b")
	mustSync(t, s, certfleet.SourceConfig, a, b)
	first := mustComplete(t, s, a, certfleet.ECDSAP256)
	rsa := mustComplete(t, s, a, certfleet.RSA2048)
	other := mustComplete(t, s, b, certfleet.ECDSAP256)
	key := keyOf("a", certfleet.ECDSAP256)
	if err := s.RetryNow(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	second := mustComplete(t, s, a, certfleet.ECDSAP256)

	if j := mustJob(t, s, key); j.CurrentID != second.ID {
		t.Errorf("CurrentID = %d, want the second issuance %d", j.CurrentID, second.ID)
	}
	got, err := s.Issuance(t.Context(), first.ID)
	if err != nil {
		t.Fatalf("first issuance lost: %v", err)
	}
	checkIssuance(t, got, first)

	ids := func(list []certfleet.Issuance) []int64 {
		var out []int64
		for _, i := range list {
			out = append(out, i.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    certfleet.IssuanceFilter
		want []int64
	}{
		{"all", certfleet.IssuanceFilter{}, []int64{second.ID, other.ID, rsa.ID, first.ID}},
		{"spec", certfleet.IssuanceFilter{Spec: "a"}, []int64{second.ID, rsa.ID, first.ID}},
		{"lineage", certfleet.IssuanceFilter{Spec: "a", KeyType: certfleet.ECDSAP256}, []int64{second.ID, first.ID}},
		{"key type", certfleet.IssuanceFilter{KeyType: certfleet.ECDSAP256}, []int64{second.ID, other.ID, first.ID}},
		{"limit", certfleet.IssuanceFilter{Spec: "a", Limit: 1}, []int64{second.ID}},
		{"none", certfleet.IssuanceFilter{Spec: "nope"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.Issuances(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(list); !slices.Equal(got, tc.want) {
				t.Errorf("Issuances(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
	list, _ := s.Issuances(t.Context(), certfleet.IssuanceFilter{Limit: 1})
	if len(list) == 1 {
		checkIssuance(t, list[0], second)
	}
}

// Accounts.

func newAccount(url string) certfleet.Account {
	return certfleet.Account{
		CA:        "https://ca.example/dir",
		Name:      certfleet.DefaultAccount,
		Contact:   []string{"mailto:ops@example.org"},
		KeyPEM:    []byte("-----BEGIN PRIVATE KEY-----\n" + url + "\n-----END PRIVATE KEY-----\n"),
		URL:       url,
		CreatedAt: time.Now(),
		Status:    certfleet.AccountValid, // every new account is valid (RFC 8555 §7.1.2)
	}
}

func testAccounts(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	want := newAccount("https://ca.example/acct/1")
	_, err := s.Account(t.Context(), want.CA, want.Name)
	wantCode(t, "Account before creation", err, certfleet.ENOTFOUND)

	got, err := s.CreateAccount(t.Context(), want)
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	checkAccount(t, got, want)
	loaded, err := s.Account(t.Context(), want.CA, want.Name)
	if err != nil {
		t.Fatalf("Account: %v", err)
	}
	checkAccount(t, loaded, want)

	// A second creation returns the first account unchanged.
	got, err = s.CreateAccount(t.Context(), newAccount("https://ca.example/acct/2"))
	if err != nil {
		t.Fatalf("second CreateAccount: %v", err)
	}
	checkAccount(t, got, want)
	loaded, _ = s.Account(t.Context(), want.CA, want.Name)
	checkAccount(t, loaded, want)

	// Another name or CA is another account.
	staging := newAccount("https://ca.example/acct/3")
	staging.Name = "staging"
	if got, err := s.CreateAccount(t.Context(), staging); err != nil || got.URL != staging.URL {
		t.Errorf("CreateAccount(staging) = %+v, %v; want a new account", got, err)
	}
	otherCA := newAccount("https://other.example/acct/1")
	otherCA.CA = "https://other.example/dir"
	if got, err := s.CreateAccount(t.Context(), otherCA); err != nil || got.URL != otherCA.URL {
		t.Errorf("CreateAccount(other CA) = %+v, %v; want a new account", got, err)
	}
}

func checkAccount(t *testing.T, got, want certfleet.Account) {
	t.Helper()
	checkTime(t, "account CreatedAt", got.CreatedAt, want.CreatedAt)
	got.CreatedAt = want.CreatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("account:\n got %+v\nwant %+v", got, want)
	}
}

func testAccountRace(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	const n = 8
	urls := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.CreateAccount(t.Context(), newAccount(fmt.Sprintf("https://ca.example/acct/%d", i)))
			urls[i], errs[i] = a.URL, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	stored, err := s.Account(t.Context(), "https://ca.example/dir", certfleet.DefaultAccount)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		if u != stored.URL {
			t.Errorf("creator %d got account %s, stored is %s", i, u, stored.URL)
		}
	}
}

// Challenges.

func testChallenges(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	ctx := t.Context()
	tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: "tok-1", KeyAuthorization: "tok-1.thumb", Expires: time.Now().Add(time.Hour)}
	if err := s.PutChallenge(ctx, tok); err != nil {
		t.Fatal(err)
	}
	checkChallenge(t, s, tok)
	// Same key, other type: a separate entry.
	alpn := certfleet.ChallengeToken{Type: certfleet.ChallengeTLSALPN01, Key: "tok-1", KeyAuthorization: "alpn", Expires: time.Now().Add(time.Hour)}
	if err := s.PutChallenge(ctx, alpn); err != nil {
		t.Fatal(err)
	}
	checkChallenge(t, s, tok)
	checkChallenge(t, s, alpn)
	// Replace.
	tok.KeyAuthorization, tok.Expires = "tok-1.other", time.Now().Add(2*time.Hour)
	if err := s.PutChallenge(ctx, tok); err != nil {
		t.Fatal(err)
	}
	checkChallenge(t, s, tok)
	// Delete, twice.
	for range 2 {
		if err := s.DeleteChallenge(ctx, tok.Type, tok.Key); err != nil {
			t.Errorf("DeleteChallenge: %v", err)
		}
	}
	_, err := s.Challenge(ctx, tok.Type, tok.Key)
	wantCode(t, "Challenge after delete", err, certfleet.ENOTFOUND)
	checkChallenge(t, s, alpn)
	// Expired.
	old := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: "old", KeyAuthorization: "old.thumb", Expires: time.Now().Add(-time.Second)}
	if err := s.PutChallenge(ctx, old); err != nil {
		t.Fatal(err)
	}
	_, err = s.Challenge(ctx, old.Type, old.Key)
	wantCode(t, "expired Challenge", err, certfleet.ENOTFOUND)
}

func checkChallenge(t *testing.T, s certfleet.Store, want certfleet.ChallengeToken) {
	t.Helper()
	got, err := s.Challenge(t.Context(), want.Type, want.Key)
	if err != nil {
		t.Errorf("Challenge(%s, %s): %v", want.Type, want.Key, err)
		return
	}
	checkTime(t, "challenge Expires", got.Expires, want.Expires)
	got.Expires = want.Expires
	if got != want {
		t.Errorf("Challenge = %+v, want %+v", got, want)
	}
}

// Errors.

func testNotFound(t *testing.T, newStore func(t *testing.T) certfleet.Store) {
	s := newStore(t)
	mustSync(t, s, certfleet.SourceConfig, NewSpec("present"))
	ctx := t.Context()
	key := keyOf("absent", certfleet.ECDSAP256)
	tests := []struct {
		name string
		do   func() error
		// what the message must name
		names string
	}{
		{"Spec", func() error { _, err := s.Spec(ctx, "absent"); return err }, "absent"},
		{"Job", func() error { _, err := s.Job(ctx, key); return err }, "absent"},
		{"Job of another key type", func() error {
			_, err := s.Job(ctx, keyOf("present", certfleet.RSA4096))
			return err
		}, "present"},
		{"Attempts", func() error { _, err := s.Attempts(ctx, key, 0); return err }, "absent"},
		{"RetryNow", func() error { return s.RetryNow(ctx, key) }, "absent"},
		{"Issuance", func() error { _, err := s.Issuance(ctx, 424242); return err }, "424242"},
		{"Account", func() error { _, err := s.Account(ctx, "https://ca.example/dir", "absent"); return err }, "absent"},
		{"Challenge", func() error { _, err := s.Challenge(ctx, certfleet.ChallengeHTTP01, "absent"); return err }, "absent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			wantCode(t, tc.name, err, certfleet.ENOTFOUND)
			if msg := certfleet.ErrorMessage(err); !strings.Contains(msg, tc.names) {
				t.Errorf("message %q does not name %q", msg, tc.names)
			}
		})
	}
}
