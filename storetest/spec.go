package storetest

// Specs: SyncSpecs (adding, changing, withdrawing a source's specs and the
// jobs they make) and Specs.

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

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
