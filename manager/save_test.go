package manager_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/sqlite"
)

// outageStore is a store that is "down" while down is set: the writes a
// job's end needs and the heartbeat fail as an unreachable PostgreSQL's do
// (EUNAVAILABLE), and so does the spec read when specDown is set. It
// counts what the manager tried.
type outageStore struct {
	*sqlite.Store
	down, specDown atomic.Bool
	// lostReply makes the next CompleteIssuance commit and then report a
	// broken connection, as when the database restarts at commit.
	lostReply atomic.Bool

	mu                                  sync.Mutex
	completes, fails, extends, releases int
	extendsWhileDown                    int
}

func unavailable() error {
	return certfleet.Errorf(certfleet.EUNAVAILABLE, "database unreachable (test outage)")
}

func (s *outageStore) CompleteIssuance(ctx context.Context, owner string, iss certfleet.Issuance, next certfleet.ScheduleUpdate, a certfleet.Attempt) (certfleet.Issuance, error) {
	s.mu.Lock()
	s.completes++
	s.mu.Unlock()
	if s.down.Load() {
		return certfleet.Issuance{}, unavailable()
	}
	stored, err := s.Store.CompleteIssuance(ctx, owner, iss, next, a)
	if err == nil && s.lostReply.CompareAndSwap(true, false) {
		return certfleet.Issuance{}, unavailable()
	}
	return stored, err
}

func (s *outageStore) FailJob(ctx context.Context, key certfleet.JobKey, owner string, a certfleet.Attempt, nextAt time.Time) error {
	s.mu.Lock()
	s.fails++
	s.mu.Unlock()
	if s.down.Load() {
		return unavailable()
	}
	return s.Store.FailJob(ctx, key, owner, a, nextAt)
}

func (s *outageStore) ExtendLease(ctx context.Context, key certfleet.JobKey, owner string, until time.Time) error {
	s.mu.Lock()
	s.extends++
	if s.down.Load() {
		s.extendsWhileDown++
	}
	s.mu.Unlock()
	if s.down.Load() {
		return unavailable()
	}
	return s.Store.ExtendLease(ctx, key, owner, until)
}

func (s *outageStore) ReleaseLease(ctx context.Context, key certfleet.JobKey, owner string) error {
	s.mu.Lock()
	s.releases++
	s.mu.Unlock()
	if s.down.Load() {
		return unavailable()
	}
	return s.Store.ReleaseLease(ctx, key, owner)
}

func (s *outageStore) Spec(ctx context.Context, name string) (certfleet.CertificateSpec, error) {
	if s.specDown.Load() {
		return certfleet.CertificateSpec{}, unavailable()
	}
	return s.Store.Spec(ctx, name)
}

// downOnSave is an Issuer that takes the store down just as the
// certificate is ready to be saved, and brings it back after outage.
type downOnSave struct {
	certfleet.Issuer
	s      *outageStore
	outage time.Duration
}

func (d downOnSave) Issue(ctx context.Context, req certfleet.IssueRequest) (certfleet.IssueResult, error) {
	res, err := d.Issuer.Issue(ctx, req)
	if err == nil {
		d.s.down.Store(true)
		time.AfterFunc(d.outage, func() { d.s.down.Store(false) })
	}
	return res, err
}

// TestSaveThroughStoreOutage: issue 16 finding 2. The store goes down as
// the certificate arrives (a PostgreSQL restart); the job keeps its lease,
// heartbeating, and saves the certificate once the store is back, instead
// of recording a failure and leaving its lease to run out. One order, no
// failed attempt.
func TestSaveThroughStoreOutage(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "outage", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "outage.certfleet.test"))
	os := &outageStore{Store: e.store}
	m := e.manager(downOnSave{Issuer: e.issuer(e.ca.DirectoryURL(), nil), s: os, outage: 1500 * time.Millisecond})
	m.Store = os
	m.Lease, m.Heartbeat = 3*time.Second, 200*time.Millisecond
	rep := mustRunOnce(t, m)
	if rep.Issued != 1 || rep.Failed != 0 {
		for _, r := range rep.Results {
			t.Logf("%s: %s %v", r.Key, r.Outcome, r.Err)
		}
		t.Fatalf("issued %d, failed %d; want the certificate saved once the store is back", rep.Issued, rep.Failed)
	}
	j := e.job("outage", certfleet.ECDSAP256)
	if j.CurrentID == 0 || j.Failures != 0 || j.LeaseOwner != "" {
		t.Errorf("job: current %d, failures %d, lease %q; want issued, no failure, released", j.CurrentID, j.Failures, j.LeaseOwner)
	}
	os.mu.Lock()
	defer os.mu.Unlock()
	if os.completes < 2 || os.fails != 0 {
		t.Errorf("CompleteIssuance tried %d times, FailJob %d; want retries of the save and no failure", os.completes, os.fails)
	}
	if os.extendsWhileDown == 0 {
		t.Errorf("no heartbeat during the outage: the lease was left to run out")
	}
	if n := e.ca.NewOrders(); n != 1 {
		t.Errorf("CA saw %d orders, want 1", n)
	}
}

// TestSaveAfterLostReply: the database committed the certificate but the
// reply was lost (connection broken at commit). Saving it again finds it
// stored: issued once, no failure, nothing archived twice.
func TestSaveAfterLostReply(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "reply", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "reply.certfleet.test"))
	os := &outageStore{Store: e.store}
	os.lostReply.Store(true)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m.Store = os
	rep := mustRunOnce(t, m)
	if rep.Issued != 1 || rep.Failed != 0 {
		t.Fatalf("issued %d, failed %d: %+v", rep.Issued, rep.Failed, rep.Results)
	}
	if rep.Results[0].Issuance == nil || rep.Results[0].Issuance.ID != e.job("reply", certfleet.ECDSAP256).CurrentID {
		t.Errorf("reported issuance %+v, want the stored one", rep.Results[0].Issuance)
	}
	all, err := e.store.Issuances(t.Context(), certfleet.IssuanceFilter{})
	if err != nil || len(all) != 1 {
		t.Errorf("archive: %d issuances, %v; want 1", len(all), err)
	}
	if j := e.job("reply", certfleet.ECDSAP256); j.Failures != 0 {
		t.Errorf("failures %d, last error %q", j.Failures, j.LastError)
	}
}

// TestStoreReadOutageIsNoFailure: a job whose decision cannot read the
// store is given back without a failed attempt or a backoff: the store
// failed, not the job.
func TestStoreReadOutageIsNoFailure(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "read", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "read.certfleet.test"))
	os := &outageStore{Store: e.store}
	os.specDown.Store(true)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m.Store = os
	assertGivenBack(t, e, m, "read", "a store read outage", func() { os.specDown.Store(false) })
}

// downBudget is a rate-limit budget whose store is unreachable while down
// is set: Check and Reserve fail as an unreachable PostgreSQL's reads do.
type downBudget struct{ down atomic.Bool }

func (b *downBudget) Check(ctx context.Context, o certfleet.OrderIntent) error {
	if b.down.Load() {
		return unavailable()
	}
	return nil
}

func (b *downBudget) Reserve(ctx context.Context, o certfleet.OrderIntent) (certfleet.Reservation, error) {
	if b.down.Load() {
		return certfleet.Reservation{}, unavailable()
	}
	return certfleet.Reservation{}, nil
}

func (b *downBudget) Finish(ctx context.Context, o certfleet.OrderIntent, reservation int64, err error) {
}

// TestBudgetStoreOutageIsNoFailure: the rate-limit budgets are kept in the
// store, so a budget that cannot be read during a database restart is the
// store's outage, not the job's failure: no failed attempt, no backoff,
// the job given back due (issue 16; the combined failover run found jobs
// backed off a minute after "list rate-limit holds: unexpected EOF").
func TestBudgetStoreOutageIsNoFailure(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "budget", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "budget.certfleet.test"))
	b := &downBudget{}
	b.down.Store(true)
	m := e.manager(e.issuer(e.ca.DirectoryURL(), nil))
	m.Budget = b
	assertGivenBack(t, e, m, "budget", "the budget's store outage", func() { b.down.Store(false) })
}

// downAccounts is an account store whose reads fail as an unreachable
// PostgreSQL's do while down is set.
type downAccounts struct {
	certfleet.AccountStore
	down atomic.Bool
}

func (a *downAccounts) Account(ctx context.Context, ca, name string) (certfleet.Account, error) {
	if a.down.Load() {
		return certfleet.Account{}, unavailable()
	}
	return a.AccountStore.Account(ctx, ca, name)
}

// TestAccountLoadOutageIsNoFailure: the ACME account is read from the
// store before each order, so a read cut by a database restart is the
// store's outage, not the job's failure: no order, no failed attempt, no
// backoff, the job given back due (issue 16; the failover run found
// "load account ...: database connection lost" recorded as a failure and
// backed off 46–54 s).
func TestAccountLoadOutageIsNoFailure(t *testing.T) {
	e := newTestEnv(t, nil)
	e.sync(spec(t, "acct", certfleet.ChallengeHTTP01, []certfleet.KeyType{certfleet.ECDSAP256}, "acct.certfleet.test"))
	accts := &downAccounts{AccountStore: e.store}
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: e.ca.DirectoryURL(), TrustedRootsPEM: e.ca.TLSRootPEM(), Accounts: accts,
		Solvers: e.solvers, PollInterval: 50 * time.Millisecond, Contact: []string{"test@certfleet.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	accts.down.Store(true)
	m := e.manager(iss)
	assertGivenBack(t, e, m, "acct", "the account's store outage", func() { accts.down.Store(false) })
}

// assertGivenBack runs m once while the store is out and checks that the
// job of spec name was given back (no failed attempt, no lease, due now),
// then ends the outage with up and checks that the next run issues it.
func assertGivenBack(t *testing.T, e *env, m *manager.Manager, name, what string, up func()) {
	t.Helper()
	mustRunOnce(t, m)
	j := e.job(name, certfleet.ECDSAP256)
	if j.Failures != 0 || j.LeaseOwner != "" || j.NextAt.After(e.clock.Now()) {
		t.Errorf("after %s: failures %d (%q), lease %q, next %v; want no failure, released, due now",
			what, j.Failures, j.LastError, j.LeaseOwner, j.NextAt)
	}
	up()
	if rep := mustRunOnce(t, m); rep.Issued != 1 {
		t.Errorf("after the outage: %+v", rep.Results)
	}
}
