package manager_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/solver/tlsalpn01"
	"github.com/certfleet/certfleet/solver/webroot"
	"github.com/certfleet/certfleet/sqlite"
)

func TestMain(m *testing.M) { issuetest.Main(m) }

// env is one certfleet installation against an in-process Pebble.
type env struct {
	t       *testing.T
	ca      *pebbleca.CA
	store   *sqlite.Store
	clock   *issuetest.Clock
	solvers map[certfleet.ChallengeType]certfleet.Solver
	webroot string
}

func newTestEnv(t *testing.T, profiles map[string]pebbleca.Profile) *env {
	t.Helper()
	store := issuetest.OpenSQLite(t)
	clk := issuetest.NewClock(time.Now())
	store.Now = clk.Now
	tlsLn := issuetest.Listen(t)
	ca, http01Solver := issuetest.StartCA(t, pebbleca.Config{TLSPort: tlsLn.Addr().(*net.TCPAddr).Port, Profiles: profiles}, store)

	serveCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { (&tlsalpn01.Responder{Store: store}).Serve(serveCtx, tlsLn) })

	wr := t.TempDir()
	return &env{
		t: t, ca: ca, store: store, clock: clk, webroot: wr,
		solvers: map[certfleet.ChallengeType]certfleet.Solver{
			certfleet.ChallengeHTTP01:    http01Solver,
			certfleet.ChallengeTLSALPN01: &tlsalpn01.Solver{Store: store},
			// A web root nobody serves: validation through it fails for real.
			certfleet.ChallengeWebroot: &webroot.Solver{Dir: wr},
		},
	}
}

func (e *env) issuer(directory string, solvers map[certfleet.ChallengeType]certfleet.Solver) *acmeissuer.Issuer {
	e.t.Helper()
	if solvers == nil {
		solvers = e.solvers
	}
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL:    directory,
		TrustedRootsPEM: e.ca.TLSRootPEM(),
		Accounts:        e.store,
		Solvers:         solvers,
		PollInterval:    50 * time.Millisecond,
		Contact:         []string{"test@certfleet.test"},
	})
	if err != nil {
		e.t.Fatalf("new issuer: %v", err)
	}
	return iss
}

func (e *env) manager(iss certfleet.Issuer) *manager.Manager {
	return &manager.Manager{
		Store:       e.store,
		Issuers:     map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Concurrency: 4,
		Now:         e.clock.Now,
		Rand:        func() float64 { return 0 },
		ARIInterval: time.Hour,
		Logger:      testLogger(e.t),
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (e *env) sync(specs ...certfleet.CertificateSpec) {
	e.t.Helper()
	for i := range specs {
		specs[i].Source = certfleet.SourceConfig
	}
	if _, err := e.store.SyncSpecs(e.t.Context(), certfleet.SourceConfig, specs); err != nil {
		e.t.Fatalf("sync specs: %v", err)
	}
}

func spec(t *testing.T, name string, ch certfleet.ChallengeType, kts []certfleet.KeyType, names ...string) certfleet.CertificateSpec {
	t.Helper()
	ids, err := certfleet.ParseIdentifiers(names)
	if err != nil {
		t.Fatal(err)
	}
	return certfleet.CertificateSpec{Name: name, Identifiers: ids, KeyTypes: kts, Challenge: ch}
}

func mustRunOnce(t *testing.T, m *manager.Manager) manager.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rep, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return rep
}

func (e *env) job(name string, kt certfleet.KeyType) certfleet.Job {
	e.t.Helper()
	j, err := e.store.Job(e.t.Context(), certfleet.JobKey{Spec: name, KeyType: kt})
	if err != nil {
		e.t.Fatalf("job %s/%s: %v", name, kt, err)
	}
	return j
}

func (e *env) current(name string, kt certfleet.KeyType) (certfleet.Issuance, *x509.Certificate) {
	e.t.Helper()
	j := e.job(name, kt)
	if j.CurrentID == 0 {
		e.t.Fatalf("%s/%s has no certificate; last error: %s", name, kt, j.LastError)
	}
	iss, err := e.store.Issuance(e.t.Context(), j.CurrentID)
	if err != nil {
		e.t.Fatal(err)
	}
	leaf, err := iss.Leaf()
	if err != nil {
		e.t.Fatal(err)
	}
	return iss, leaf
}

// verify checks the chain against the CA's roots and the names.
func (e *env) verify(iss certfleet.Issuance, names ...string) {
	e.t.Helper()
	certs, err := certfleet.ParseChain(iss.ChainPEM)
	if err != nil {
		e.t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, n := range names {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: n, Roots: e.ca.Roots(), Intermediates: inter}); err != nil {
			e.t.Errorf("certificate %s does not verify for %q: %v", iss.Serial, n, err)
		}
	}
}

func TestIssueEachChallengeAndKeyType(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(
		spec(t, "p256", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "p256.certfleet.test"),
		spec(t, "p384", certfleet.ChallengeTLSALPN01, []certfleet.KeyType{certfleet.ECDSAP384}, "p384.certfleet.test"),
		spec(t, "rsa", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.RSA2048}, "rsa.certfleet.test"),
		spec(t, "multi", certfleet.ChallengeTLSALPN01, []certfleet.KeyType{certfleet.ECDSAP256, certfleet.RSA3072},
			"a.multi.certfleet.test", "b.multi.certfleet.test", "c.multi.certfleet.test", "127.0.0.1"),
	)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	rep := mustRunOnce(t, m)
	if rep.Issued != 5 || rep.Failed != 0 {
		for _, r := range rep.Results {
			t.Logf("%s: %s %v", r.Key, r.Outcome, r.Err)
		}
		t.Fatalf("issued %d, failed %d; want 5 issued", rep.Issued, rep.Failed)
	}
	for _, tc := range []struct {
		name  string
		kt    certfleet.KeyType
		names []string
	}{
		{"p256", certfleet.ECDSAP256, []string{"p256.certfleet.test"}},
		{"p384", certfleet.ECDSAP384, []string{"p384.certfleet.test"}},
		{"rsa", certfleet.RSA2048, []string{"rsa.certfleet.test"}},
		{"multi", certfleet.ECDSAP256, []string{"a.multi.certfleet.test", "b.multi.certfleet.test", "c.multi.certfleet.test"}},
		{"multi", certfleet.RSA3072, []string{"a.multi.certfleet.test", "c.multi.certfleet.test"}},
	} {
		iss, leaf := e.current(tc.name, tc.kt)
		e.verify(iss, tc.names...)
		if kt, err := certfleet.KeyTypeOf(leaf.PublicKey); err != nil || kt != tc.kt {
			t.Errorf("%s: key type %v, %v; want %v", tc.name, kt, err, tc.kt)
		}
		key, err := certfleet.ParsePrivateKey(iss.KeyPEM)
		if err != nil {
			t.Fatalf("%s: archived key: %v", tc.name, err)
		}
		if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
			t.Errorf("%s: archived key does not match the certificate", tc.name)
		}
		if iss.ARICertID == "" {
			t.Errorf("%s: no ARI certificate ID archived", tc.name)
		}
	}
	_, leaf := e.current("multi", certfleet.ECDSAP256)
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("multi: IP SANs %v, want [127.0.0.1]", leaf.IPAddresses)
	}
	if n := e.ca.NewOrders(); n != 5 {
		t.Errorf("CA saw %d new orders, want 5", n)
	}
	// Nothing is due now: a second pass orders nothing.
	rep = mustRunOnce(t, m)
	if len(rep.Results) != 0 || e.ca.NewOrders() != 5 {
		t.Fatalf("second pass worked on %d jobs (CA orders %d); want none", len(rep.Results), e.ca.NewOrders())
	}
}

func TestRenewalAtDefaultTime(t *testing.T) {
	// A 1-hour profile: renewed at half-life (short-lived rule).
	e := newTestEnv(t, map[string]pebbleca.Profile{pebbleca.DefaultProfile: {ValidityPeriod: time.Hour}})
	e.sync(spec(t, "short", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "short.certfleet.test"))
	// A CA without ARI: the default renewal rule applies.
	m := e.manager(noARI{e.issuer(e.ca.DirectoryURL(), nil)})
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Fatalf("first pass issued %d", rep.Issued)
	}
	first, leaf := e.current("short", certfleet.ECDSAP256)
	// Half-life, moved earlier by the certificate's own jitter (issue 16:
	// no lockstep without ARI).
	base := certfleet.DefaultRenewalTime(leaf.NotBefore, leaf.NotAfter, 0)
	wantNext := certfleet.RenewalTime(certfleet.RenewalInput{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		R: certfleet.RenewalRand(first.Fingerprint, certfleet.RenewalInfo{})})
	if wantNext.After(base) || wantNext.Before(base.Add(-time.Hour/certfleet.JitterFraction)) {
		t.Fatalf("renewal time %v outside the jitter range before half-life %v", wantNext, base)
	}
	if got := e.job("short", certfleet.ECDSAP256).NextAt; got.Sub(wantNext).Abs() > time.Millisecond {
		t.Fatalf("NextAt = %v, want %v", got, wantNext)
	}

	// Just before the renewal time: nothing happens.
	e.clock.Advance(wantNext.Sub(e.clock.Now()) - time.Second)
	if rep := mustRunOnce(t, m); len(rep.Results) != 0 {
		t.Fatalf("worked on %d jobs before renewal time", len(rep.Results))
	}
	// At the renewal time: renewed, with a new key, replacing the first.
	e.clock.Advance(2 * time.Second)
	rep := mustRunOnce(t, m)
	if rep.Issued != 1 {
		t.Fatalf("renewal pass: %+v", rep.Results)
	}
	second, _ := e.current("short", certfleet.ECDSAP256)
	if second.ID == first.ID || second.Replaces != first.ID {
		t.Fatalf("second issuance %d replaces %d; want a new one replacing %d", second.ID, second.Replaces, first.ID)
	}
	if string(second.KeyPEM) == string(first.KeyPEM) {
		t.Error("renewal reused the key; the default is a fresh key")
	}
	all, err := e.store.Issuances(t.Context(), certfleet.IssuanceFilter{Spec: "short"})
	if err != nil || len(all) != 2 {
		t.Fatalf("archive has %d issuances (%v); want both kept", len(all), err)
	}
}

func TestReuseKey(t *testing.T) {
	e := newTestEnv(t, map[string]pebbleca.Profile{pebbleca.DefaultProfile: {ValidityPeriod: time.Hour}})
	s := spec(t, "keep", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "keep.certfleet.test")
	s.ReuseKey = true
	e.sync(s)
	m := e.manager(noARI{e.issuer(e.ca.DirectoryURL(), nil)})
	mustRunOnce(t, m)
	first, _ := e.current("keep", certfleet.ECDSAP256)
	e.clock.Advance(40 * time.Minute)
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Fatalf("renewal: %+v", rep.Results)
	}
	second, _ := e.current("keep", certfleet.ECDSAP256)
	if second.ID == first.ID || string(second.KeyPEM) != string(first.KeyPEM) {
		t.Fatal("reuse_key: renewal did not keep the key")
	}
}

func TestARIWindowDrivesRenewal(t *testing.T) {
	e := newTestEnv(t, nil) // Pebble's default 90-day certificates
	e.sync(spec(t, "ari", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "ari.certfleet.test"))
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	mustRunOnce(t, m)
	first, leaf := e.current("ari", certfleet.ECDSAP256)

	// After the ARI interval the CA is asked; its window is weeks away, so
	// the job is deferred into that window and nothing is ordered.
	e.clock.Advance(m.ARIInterval + time.Second)
	rep := mustRunOnce(t, m)
	if rep.Deferred != 1 || rep.Issued != 0 {
		t.Fatalf("ARI check: %+v, want 1 deferred", rep.Results)
	}
	j := e.job("ari", certfleet.ECDSAP256)
	if j.ARIStart.IsZero() || !j.ARIStart.After(leaf.NotBefore) || !j.ARIEnd.Before(leaf.NotAfter.Add(time.Second)) {
		t.Fatalf("ARI window [%v, %v] not stored or outside the lifetime", j.ARIStart, j.ARIEnd)
	}

	// The CA moves the window to now (as for a mass revocation): the next
	// check renews at once, with "replaces".
	now := e.clock.Now()
	if err := e.ca.SetRenewalInfo(t.Context(), leaf, now.Add(-time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatalf("set renewal info: %v", err)
	}
	// The deferred job wakes no later than the CA's Retry-After (or our
	// ARI interval) to ask again.
	if !j.NextAt.Before(j.ARIStart) || j.ARIRetryAt.IsZero() || j.NextAt.After(j.ARIRetryAt) {
		t.Fatalf("deferred to %v; want the ARI re-check at %v, before the window %v", j.NextAt, j.ARIRetryAt, j.ARIStart)
	}
	e.clock.Advance(j.NextAt.Sub(e.clock.Now()) + time.Second)
	rep = mustRunOnce(t, m)
	if rep.Issued != 1 {
		t.Fatalf("after the CA moved the window: %+v, want 1 issued", rep.Results)
	}
	second, _ := e.current("ari", certfleet.ECDSAP256)
	if second.Replaces != first.ID {
		t.Fatalf("renewal replaces %d, want %d", second.Replaces, first.ID)
	}
	if !strings.Contains(lastAttemptOutcome(t, e, "ari"), certfleet.OutcomeIssued) {
		t.Fatal("no successful attempt recorded")
	}
}

func lastAttemptOutcome(t *testing.T, e *env, name string) string {
	t.Helper()
	atts, err := e.store.Attempts(t.Context(), certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256}, 1)
	if err != nil || len(atts) == 0 {
		t.Fatalf("attempts: %v, %d", err, len(atts))
	}
	return atts[0].Outcome
}

func TestSpecChangeReissues(t *testing.T) {
	e := newTestEnv(t, nil)
	s := spec(t, "grow", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "grow.certfleet.test")
	e.sync(s)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	mustRunOnce(t, m)
	first, _ := e.current("grow", certfleet.ECDSAP256)

	// A change that does not alter the certificate orders nothing.
	s.Challenge = certfleet.ChallengeTLSALPN01
	e.sync(s)
	if rep := mustRunOnce(t, m); len(rep.Results) != 0 {
		t.Fatalf("challenge change caused work: %+v", rep.Results)
	}
	// A new name re-issues at once.
	s = spec(t, "grow", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "grow.certfleet.test", "more.certfleet.test")
	e.sync(s)
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Fatalf("identifier change: %+v, want 1 issued", rep.Results)
	}
	second, leaf := e.current("grow", certfleet.ECDSAP256)
	if second.ID == first.ID || !slices.Contains(leaf.DNSNames, "more.certfleet.test") {
		t.Fatalf("re-issued certificate names %v", leaf.DNSNames)
	}
	// Adding an RSA key type issues only the RSA certificate.
	s.KeyTypes = []certfleet.KeyType{certfleet.ECDSAP256, certfleet.RSA2048}
	e.sync(s)
	rep := mustRunOnce(t, m)
	if rep.Issued != 1 || rep.Results[0].Key.KeyType != certfleet.RSA2048 {
		t.Fatalf("key type added: %+v, want only the RSA job", rep.Results)
	}
}

func TestValidationFailureBacksOff(t *testing.T) {
	e := newTestEnv(t, nil)
	// webroot writes into a directory no web server serves: the CA's
	// validator gets a 404 from the responder port and fails the authz.
	e.sync(spec(t, "broken", certfleet.ChallengeWebroot, []certfleet.KeyType{certfleet.ECDSAP256}, "broken.certfleet.test"))
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	start := e.clock.Now()
	rep := mustRunOnce(t, m)
	if rep.Failed != 1 {
		t.Fatalf("want 1 failure, got %+v", rep.Results)
	}
	j := e.job("broken", certfleet.ECDSAP256)
	if j.Failures != 1 || !strings.Contains(j.LastError, "broken.certfleet.test") {
		t.Fatalf("failures %d, last error %q; want 1 and the identifier named", j.Failures, j.LastError)
	}
	if got, want := j.NextAt.Sub(start), certfleet.BackoffMin; got < want-time.Second || got > want+time.Minute {
		t.Fatalf("next try in %v, want about %v", got, want)
	}
	atts, err := e.store.Attempts(t.Context(), j.JobKey, 5)
	if err != nil || len(atts) != 1 || atts[0].ProblemType == "" || atts[0].Outcome != certfleet.OutcomeFailed {
		t.Fatalf("attempts %+v (%v); want one failed attempt with the ACME problem type", atts, err)
	}
	// No tight loop: an immediate pass does nothing.
	if rep := mustRunOnce(t, m); len(rep.Results) != 0 {
		t.Fatalf("retried before the backoff: %+v", rep.Results)
	}
	// After the backoff it is retried, and the next wait doubles.
	e.clock.Advance(certfleet.BackoffMin + time.Second)
	if rep := mustRunOnce(t, m); rep.Failed != 1 {
		t.Fatalf("second try: %+v", rep.Results)
	}
	j = e.job("broken", certfleet.ECDSAP256)
	if j.Failures != 2 || j.NextAt.Sub(e.clock.Now()) < 2*time.Minute-time.Second {
		t.Fatalf("after 2 failures: %d failures, next in %v; want 2 and 2m", j.Failures, j.NextAt.Sub(e.clock.Now()))
	}
}

func TestCAOutageHonoursRetryAfter(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "outage", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "outage.certfleet.test"))
	// A CA front end that is down, asking clients to come back in an hour.
	var hits atomic.Int64
	down := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "3600")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"type":"urn:ietf:params:acme:error:serverInternal","detail":"maintenance"}`)
	}))
	t.Cleanup(down.Close)
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: down.URL + "/dir", HTTPClient: down.Client(), Accounts: e.store, Solvers: e.solvers,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := e.manager(iss)
	start := e.clock.Now()
	rep := mustRunOnce(t, m)
	if rep.Failed != 1 {
		t.Fatalf("want a failure, got %+v", rep.Results)
	}
	if hits.Load() == 0 {
		t.Fatal("the CA was never asked")
	}
	j := e.job("outage", certfleet.ECDSAP256)
	if got := j.NextAt.Sub(start); got < time.Hour-time.Second {
		t.Fatalf("next try in %v; the CA said Retry-After 1h", got)
	}
	if !strings.Contains(j.LastError, "503") && !strings.Contains(strings.ToLower(j.LastError), "maintenance") && !strings.Contains(strings.ToLower(j.LastError), "unavailable") {
		t.Errorf("last error %q does not say the CA was unavailable", j.LastError)
	}
}

// noARI hides the issuer's RenewalInfo method: a CA without ARI.
type noARI struct{ certfleet.Issuer }

// blockingSolver presents through an inner solver, then blocks until its
// context ends: a process that dies after the order was placed.
type blockingSolver struct {
	certfleet.Solver
	presented chan struct{}
	once      sync.Once
}

func (b *blockingSolver) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	if b.Solver == nil {
		return nil
	}
	return b.Solver.CleanUp(ctx, chal)
}

func (b *blockingSolver) Present(ctx context.Context, chal certfleet.Challenge) error {
	b.once.Do(func() { close(b.presented) })
	<-ctx.Done()
	return ctx.Err()
}

func TestRestartResumesOrder(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "resume", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "resume.certfleet.test"))

	// First "process": places the order, then stops while answering.
	bs := &blockingSolver{Solver: e.solvers[certfleet.ChallengeHTTP01], presented: make(chan struct{})}
	solvers := map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: bs}
	m1 := e.manager(e.issuer(e.ca.DirectoryURL(), solvers))
	m1.Instance = "first"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m1.RunOnce(ctx) }()
	select {
	case <-bs.presented:
	case <-time.After(time.Minute):
		t.Fatal("order never reached its challenge")
	}
	cancel()
	<-done
	j := e.job("resume", certfleet.ECDSAP256)
	if j.PendingOrderURL == "" || j.CurrentID != 0 {
		t.Fatalf("after the stop: pending order %q, current %d; want the order kept and no certificate", j.PendingOrderURL, j.CurrentID)
	}
	if e.ca.NewOrders() != 1 {
		t.Fatalf("CA saw %d orders before the restart", e.ca.NewOrders())
	}

	// Second "process", new instance name, normal solvers: resumes.
	m2 := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m2.Instance = "second"
	rep := mustRunOnce(t, m2)
	if rep.Issued != 1 {
		t.Fatalf("restart: %+v", rep.Results)
	}
	iss, _ := e.current("resume", certfleet.ECDSAP256)
	if iss.OrderURL != j.PendingOrderURL {
		t.Errorf("certificate came from order %s, want the resumed %s", iss.OrderURL, j.PendingOrderURL)
	}
	if n := e.ca.NewOrders(); n != 1 {
		t.Fatalf("CA saw %d new orders; the restart must resume the first, not place another", n)
	}
	if e.job("resume", certfleet.ECDSAP256).PendingOrderURL != "" {
		t.Error("pending order not cleared after issuance")
	}
}

func TestUnknownAccountIsPermanent(t *testing.T) {
	e := newTestEnv(t, nil)
	s := spec(t, "orphan", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "orphan.certfleet.test")
	s.Account = "nobody"
	e.sync(s)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	rep := mustRunOnce(t, m)
	var nr certfleet.ErrNoRetry
	if rep.Failed != 1 || !errors.As(rep.Results[0].Err, &nr) {
		t.Fatalf("want a permanent failure, got %+v", rep.Results)
	}
	if got := e.job("orphan", certfleet.ECDSAP256).NextAt.Sub(e.clock.Now()); got < 12*time.Hour {
		t.Fatalf("permanent failure retried in %v; want the backoff cap", got)
	}
	if e.ca.NewOrders() != 0 {
		t.Fatal("an order was placed for an unconfigured account")
	}
}

// countingStore counts the scheduler's claims (it wraps the real store).
type countingStore struct {
	*sqlite.Store
	claims atomic.Int64
}

func (c *countingStore) ClaimDue(ctx context.Context, r certfleet.ClaimRequest) ([]certfleet.Job, error) {
	c.claims.Add(1)
	return c.Store.ClaimDue(ctx, r)
}

func TestDaemonRun(t *testing.T) {
	e := newTestEnv(t, nil)
	e.clock = nil
	e.store.Now = time.Now
	cs := &countingStore{Store: e.store}
	// d4's dns-01 challenge never completes: its job stays leased and due
	// while the daemon idles, which must not make the loop spin either.
	solvers := maps.Clone(e.solvers)
	solvers[certfleet.ChallengeDNS01] = &blockingSolver{presented: make(chan struct{})}
	m := e.manager(e.issuer(e.ca.DirectoryURL(), solvers))
	m.Store, m.Now, m.PollInterval = cs, time.Now, 5*time.Second
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	// Specs added while the daemon runs are issued after a Wake.
	e.sync(
		spec(t, "d1", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "d1.certfleet.test"),
		spec(t, "d2", certfleet.ChallengeTLSALPN01, []certfleet.KeyType{certfleet.ECDSAP256, certfleet.RSA2048}, "d2.certfleet.test"),
		// Keeps failing: a due-but-backing-off job must not make the loop spin.
		spec(t, "d3", certfleet.ChallengeWebroot, []certfleet.KeyType{certfleet.ECDSAP256}, "d3.certfleet.test"),
		spec(t, "d4", certfleet.ChallengeDNS01, []certfleet.KeyType{certfleet.ECDSAP256}, "d4.certfleet.test"),
	)
	m.Wake()
	deadline := time.Now().Add(time.Minute)
	for {
		j1, j2, j3 := e.job("d1", certfleet.ECDSAP256), e.job("d2", certfleet.RSA2048), e.job("d3", certfleet.ECDSAP256)
		if j1.CurrentID != 0 && j2.CurrentID != 0 && e.job("d2", certfleet.ECDSAP256).CurrentID != 0 && j3.Failures > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not issue the new specs in time: %+v %+v %+v", j1, j2, j3)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j := e.job("d4", certfleet.ECDSAP256); j.LeaseOwner == "" {
		t.Fatal("d4 is not in flight")
	}
	// Idle: nothing claimable (d3 backs off, d4 is leased by us). The loop
	// must sleep, not spin.
	before := cs.claims.Load()
	time.Sleep(2 * time.Second)
	if n := cs.claims.Load() - before; n > 3 {
		t.Errorf("idle daemon claimed %d times in 2 s; it is spinning", n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	// Given back: the lease ended (with its owner still named, so that
	// the next claim takes this job first: TestShutdownGiveBackFirstInLine),
	// the pending order kept for whoever resumes it.
	if j := e.job("d4", certfleet.ECDSAP256); j.LeaseUntil.After(time.Now()) || j.PendingOrderURL == "" {
		t.Errorf("after shutdown: lease %q until %v, pending order %q; want the lease ended and the order kept", j.LeaseOwner, j.LeaseUntil, j.PendingOrderURL)
	}
}

// TestPrepareHook is issue #4 §4.3: Prepare runs before the order and its
// done after it, only for due jobs; a failing Prepare fails the attempt,
// with backoff, and no order reaches the CA.
func TestPrepareHook(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "prep", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "prep.certfleet.test"))
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	var events []string
	fail := errors.New("firewall refused")
	var prepErr error
	m.Prepare = func(ctx context.Context, s certfleet.CertificateSpec) (func(), error) {
		events = append(events, fmt.Sprintf("prepare %s orders=%d", s.Name, e.ca.NewOrders()))
		if prepErr != nil {
			return nil, prepErr
		}
		return func() { events = append(events, fmt.Sprintf("done orders=%d", e.ca.NewOrders())) }, nil
	}
	prepErr = fail
	rep := mustRunOnce(t, m)
	if rep.Failed != 1 || !errors.Is(rep.Results[0].Err, fail) || !strings.Contains(rep.Results[0].Err.Error(), "prepare prep") {
		t.Fatalf("failing prepare: %+v", rep.Results)
	}
	if n := e.ca.NewOrders(); n != 0 {
		t.Fatalf("a failing prepare still placed %d orders", n)
	}
	if j := e.job("prep", certfleet.ECDSAP256); j.Failures != 1 || !j.NextAt.After(e.clock.Now()) {
		t.Fatalf("failing prepare: job %+v, want a failure with backoff", j)
	}

	prepErr = nil
	e.clock.Advance(certfleet.BackoffMin + time.Second)
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Fatalf("second pass: %+v", rep.Results)
	}
	want := []string{"prepare prep orders=0", "prepare prep orders=0", "done orders=1"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	// Not due: no prepare.
	if rep := mustRunOnce(t, m); rep.Issued != 0 || len(events) != 3 {
		t.Fatalf("a pass with nothing due ran prepare: %q", events)
	}
}
