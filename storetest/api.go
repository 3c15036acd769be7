package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// APIStore is what the HTTP API needs of a store beyond certfleet.Store.
type APIStore interface {
	certfleet.Store
	certfleet.TokenStore
	certfleet.SpecWriter
}

// RunAPI runs the contract of the API's store interfaces (TokenStore,
// SpecWriter). It is separate from Run so that a backend can adopt it when
// it implements them.
func RunAPI(t *testing.T, newStore func(t *testing.T) APIStore) {
	t.Run("Tokens", func(t *testing.T) { testTokens(t, newStore(t)) })
	t.Run("PutSpec", func(t *testing.T) { testPutSpec(t, newStore(t)) })
	t.Run("PutSpecs", func(t *testing.T) { testPutSpecs(t, newStore(t)) })
	t.Run("WithdrawSpec", func(t *testing.T) { testWithdrawSpec(t, newStore(t)) })
}

func testTokens(t *testing.T, s APIStore) {
	ctx := t.Context()
	id, secret, hash := certfleet.NewTokenSecret()
	tok := certfleet.Token{ID: id, Description: "panel", Names: []string{"*.example.org"},
		Permissions: []certfleet.Permission{certfleet.PermReadCerts}, Hash: hash, CreatedAt: time.Now()}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, tok); certfleet.ErrorCode(err) != certfleet.ECONFLICT {
		t.Fatalf("duplicate token: %v, want ECONFLICT", err)
	}
	got, err := s.TokenByHash(ctx, certfleet.HashTokenSecret(secret))
	if err != nil || got.ID != id || !bytes.Equal(got.Hash, hash) || got.Names[0] != "*.example.org" || got.Revoked() {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, certfleet.HashTokenSecret(secret+"x")); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("unknown hash: %v, want ENOTFOUND", err)
	}
	at := time.Now().Add(-time.Minute)
	if err := s.RevokeToken(ctx, id, at); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, _ = s.TokenByHash(ctx, hash)
	if !got.Revoked() || got.RevokedAt.Sub(at).Abs() > time.Millisecond {
		t.Fatalf("revoked at %v, want %v (the first revocation)", got.RevokedAt, at)
	}
	if err := s.RevokeToken(ctx, "tok_none", at); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("revoke unknown: %v", err)
	}
	if byID, err := s.Token(ctx, id); err != nil || byID.ID != id || !byID.Revoked() || !bytes.Equal(byID.Hash, hash) {
		t.Fatalf("Token(%s) = %+v, %v; want the revoked token", id, byID, err)
	}
	if _, err := s.Token(ctx, "tok_none"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("Token(unknown): %v, want ENOTFOUND", err)
	}
	if all, err := s.Tokens(ctx); err != nil || len(all) != 1 {
		t.Fatalf("Tokens = %d, %v", len(all), err)
	}
	for i := range 3 {
		if err := s.RecordKeyRead(ctx, certfleet.KeyRead{TokenID: id, Spec: "web", KeyType: certfleet.ECDSAP256, IssuanceID: int64(i + 1), Serial: "ab", Remote: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	reads, err := s.KeyReads(ctx, 2)
	if err != nil || len(reads) != 2 || reads[0].IssuanceID != 3 || reads[0].At.IsZero() {
		t.Fatalf("KeyReads = %+v, %v; want the newest 2 first", reads, err)
	}
}

func testPutSpec(t *testing.T, s APIStore) {
	ctx := t.Context()
	sp := NewSpec("api1")
	sp.Source = certfleet.SourceAPI
	if changed, err := s.PutSpec(ctx, sp); err != nil || !changed {
		t.Fatalf("PutSpec new = %v, %v", changed, err)
	}
	if changed, err := s.PutSpec(ctx, sp); err != nil || changed {
		t.Fatalf("PutSpec same = %v, %v; want unchanged", changed, err)
	}
	// Other specs of the source are not touched (unlike SyncSpecs).
	sp2 := NewSpec("api2")
	sp2.Source = certfleet.SourceAPI
	if _, err := s.PutSpec(ctx, sp2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Spec(ctx, "api1"); err != nil || got.Disabled {
		t.Fatalf("api1 after putting api2: %+v, %v", got, err)
	}
	if _, err := s.Job(ctx, certfleet.JobKey{Spec: "api2", KeyType: certfleet.ECDSAP256}); err != nil {
		t.Fatalf("job of a new spec: %v", err)
	}
	// A config spec's name is not the API's to take.
	cfg := NewSpec("cfg")
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{cfg}); err != nil {
		t.Fatal(err)
	}
	cfg.Source = certfleet.SourceAPI
	if _, err := s.PutSpec(ctx, cfg); certfleet.ErrorCode(err) != certfleet.ECONFLICT {
		t.Fatalf("PutSpec over a config spec: %v, want ECONFLICT", err)
	}
	// Syncing the config does not withdraw API specs.
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Spec(ctx, "api1"); got.Disabled {
		t.Fatal("a config sync withdrew an API spec")
	}
	bad := sp
	bad.KeyTypes = nil
	if _, err := s.PutSpec(ctx, bad); certfleet.ErrorCode(err) != certfleet.EINVALID {
		t.Fatalf("invalid spec: %v", err)
	}
}

// testPutSpecs checks the group commit of API PUTs (issue 13): the puts of
// one batch apply in order, each on the state the earlier ones left; a
// refused put gets its own error and the others stand; a put's audit event
// is recorded exactly when it changed something.
func testPutSpecs(t *testing.T, s APIStore) {
	ctx := t.Context()
	bw, ok := s.(certfleet.SpecBatchWriter)
	if !ok {
		t.Fatalf("%T does not implement certfleet.SpecBatchWriter", s)
	}
	ts, ok := s.(certfleet.TenantStore)
	if !ok {
		t.Fatalf("%T does not implement certfleet.TenantStore", s)
	}
	if _, err := ts.CreateTenant(ctx, certfleet.Tenant{Name: "q", Names: []string{"*.q.example"}, MaxNames: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := NewSpec("cfg")
	if _, err := s.SyncSpecs(ctx, certfleet.SourceConfig, []certfleet.CertificateSpec{cfg}); err != nil {
		t.Fatal(err)
	}
	api := func(name string) certfleet.CertificateSpec {
		sp := NewSpec(name)
		sp.Source = certfleet.SourceAPI
		return sp
	}
	ev := func(name string) *certfleet.Event {
		return &certfleet.Event{Kind: certfleet.EventSpecChanged, Actor: "token:tok_batch", Certificate: name, Reason: "requested", At: time.Now()}
	}
	overCfg, invalid := cfg, api("bad")
	overCfg.Source, invalid.KeyTypes = certfleet.SourceAPI, nil
	puts := []certfleet.SpecPut{
		{Spec: api("b1"), Event: ev("b1")}, // new
		{Spec: api("b1"), Event: ev("b1")}, // the same again: sees the first
		{Spec: overCfg, Event: ev("cfg")},  // ECONFLICT
		{Spec: invalid, Event: ev("bad")},  // EINVALID
		{Spec: tenantSpec("one.q.example", "q", "one.q.example"), Event: ev("one.q.example")}, // within the quota of 1
		{Spec: tenantSpec("two.q.example", "q", "two.q.example"), Event: ev("two.q.example")}, // over it: sees the one before
		{Spec: api("b2")}, // new, no event
	}
	res, err := bw.PutSpecs(ctx, puts)
	if err != nil {
		t.Fatalf("PutSpecs: %v", err)
	}
	want := []struct {
		changed bool
		code    string
	}{{true, ""}, {false, ""}, {false, certfleet.ECONFLICT}, {false, certfleet.EINVALID}, {true, ""}, {false, certfleet.EQUOTA}, {true, ""}}
	if len(res) != len(want) {
		t.Fatalf("PutSpecs returned %d results for %d puts", len(res), len(puts))
	}
	for i, w := range want {
		if res[i].Changed != w.changed || certfleet.ErrorCode(res[i].Err) != w.code && !(w.code == "" && res[i].Err == nil) {
			t.Errorf("put %d (%s): changed %v, err %v; want changed %v, code %q", i, puts[i].Spec.Name, res[i].Changed, res[i].Err, w.changed, w.code)
		}
	}
	// The puts that created a certificate say so, with the time its jobs
	// are due as stored (the API answers from it, issue 13); the others
	// do not.
	for i, p := range puts {
		created := i == 0 || i == 4 || i == 6
		if got := res[i].CreatedAt; created == got.IsZero() {
			t.Errorf("put %d (%s): CreatedAt %v; want it set only when the put created the certificate", i, p.Spec.Name, got)
		}
	}
	for _, i := range []int{0, 4, 6} {
		name := puts[i].Spec.Name
		job, err := s.Job(ctx, certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256})
		if err != nil {
			t.Errorf("job of %s put in the batch: %v", name, err)
		} else if !job.NextAt.Equal(res[i].CreatedAt) || job.NextAt.Location() != res[i].CreatedAt.Location() {
			t.Errorf("job of %s: due at %v; the put said it created it at %v", name, job.NextAt, res[i].CreatedAt)
		}
	}
	if again, err := bw.PutSpecs(ctx, []certfleet.SpecPut{{Spec: func() certfleet.CertificateSpec { sp := api("b2"); sp.RenewBefore = time.Hour; return sp }()}}); err != nil {
		t.Fatal(err)
	} else if !again[0].Changed || !again[0].CreatedAt.IsZero() {
		t.Errorf("a change of an existing certificate: %+v; want changed, not created", again[0])
	}
	for _, name := range []string{"b1", "b2", "one.q.example"} {
		sp, err := s.Spec(ctx, name)
		if err != nil {
			t.Fatalf("spec %s put in the batch: %v", name, err)
		}
		if got, err := s.SpecsByName(ctx, sp.Identifiers[0].Value); err != nil || len(got) != 1 || got[0].Name != name {
			t.Errorf("SpecsByName(%s) = %v, %v; want %s indexed", sp.Identifiers[0].Value, got, err, name)
		}
	}
	for _, name := range []string{"two.q.example", "bad"} {
		if _, err := s.Spec(ctx, name); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			t.Errorf("refused %s: Spec = %v, want ENOTFOUND", name, err)
		}
	}
	if got, _ := s.Spec(ctx, "cfg"); got.Source != certfleet.SourceConfig {
		t.Errorf("config spec after a refused put over it: source %q", got.Source)
	}
	events, err := s.Events(ctx, certfleet.EventFilter{Actor: "token:tok_batch", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Certificate)
	}
	slices.Sort(got)
	if want := []string{"b1", "one.q.example"}; !slices.Equal(got, want) {
		t.Errorf("audit events of the batch: %v, want %v (one per put that changed something)", got, want)
	}
	// An empty batch is no error.
	if res, err := bw.PutSpecs(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("PutSpecs(nil) = %v, %v", res, err)
	}
}

func testWithdrawSpec(t *testing.T, s APIStore) {
	ctx := t.Context()
	sp := NewSpec("gone")
	sp.Source = certfleet.SourceAPI
	if _, err := s.PutSpec(ctx, sp); err != nil {
		t.Fatal(err)
	}
	key := certfleet.JobKey{Spec: "gone", KeyType: certfleet.ECDSAP256}
	jobs, err := s.ClaimDue(ctx, certfleet.ClaimRequest{Owner: "o", Now: time.Now().Add(time.Second), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %d, %v", len(jobs), err)
	}
	iss := NewIssuance(sp, certfleet.ECDSAP256)
	stored, err := s.CompleteIssuance(ctx, "o", iss, certfleet.ScheduleUpdate{NextAt: time.Now().Add(time.Hour)},
		certfleet.Attempt{JobKey: key, Instance: "o", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: certfleet.OutcomeIssued})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WithdrawSpec(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.Job(ctx, key); !j.Disabled || j.CurrentID != stored.ID {
		t.Fatalf("after withdrawal: %+v; want disabled, current kept", j)
	}
	// Wanted again: same revision, current certificate kept, not due.
	if _, err := s.PutSpec(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.Job(ctx, key); j.Disabled || j.CurrentID != stored.ID || !j.NextAt.After(time.Now()) {
		t.Fatalf("re-put: %+v; want enabled, same current, not due", j)
	}
	if err := s.WithdrawSpec(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	got, err := s.Issuance(ctx, stored.ID)
	if err != nil || len(got.KeyPEM) != 0 || len(got.ChainPEM) == 0 {
		t.Fatalf("after destroying keys: key %d bytes, chain %d bytes, %v", len(got.KeyPEM), len(got.ChainPEM), err)
	}
	if _, err := s.PutSpec(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.Job(ctx, key); j.CurrentID != 0 || j.NextAt.After(time.Now()) {
		t.Fatalf("re-put after destroying keys: %+v; want no current certificate, due now", j)
	}
	if err := s.WithdrawSpec(ctx, "none", false); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Fatalf("withdraw unknown: %v", err)
	}
}
