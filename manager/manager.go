// Package manager is certfleet's renewal scheduler: it finds due jobs in the
// store, leases them, decides whether each needs a certificate now (first
// issuance, spec change, renewal window reached, ARI), orders it through an
// Issuer, archives it, hands it to a Deployer, and schedules the next check,
// backing off on failure.
//
// It talks only to root interfaces (certfleet.Store, certfleet.Issuer); it
// does not speak ACME, touch files or open databases. cmd/certfleet wires it.
// Several Managers (in one process or many instances) may share one store:
// leases make sure a job is worked on by one of them at a time.
package manager

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Defaults for Manager's zero fields, with their reasons.
const (
	// DefaultConcurrency bounds orders in flight. Public CAs rate-limit per
	// account, and Pebble wedges above 16 (shared/REAL-COMPONENTS.md).
	DefaultConcurrency = 8
	// DefaultLease is how long a claimed job stays ours without a
	// heartbeat: a crashed instance's work is taken over this long after
	// its last heartbeat (plus at most minIdle, the survivors' look at the
	// store). 10 s keeps takeover under 15 s (issue 16: two minutes was an
	// outage of its own) while riding out a database restart of a few
	// seconds: the heartbeats resume before the lease runs out.
	DefaultLease = 10 * time.Second
	// DefaultHeartbeatDivisor: the heartbeat is Lease/5 by default (2 s
	// for the default lease), so four heartbeats in a row can fail
	// before the lease is at risk; each costs one UPDATE per job in
	// flight.
	DefaultHeartbeatDivisor = 5
	// DefaultPollInterval is the longest the scheduler sleeps between looks
	// at the store, so work added by another instance (or a missed wake-up)
	// is noticed within it.
	DefaultPollInterval = 30 * time.Second
	// DefaultARIInterval is how often the CA's renewalInfo is asked when it
	// sent no Retry-After. RFC 9773 §4.3.2 suggests clients poll about
	// twice a day; Let's Encrypt sends Retry-After of 6 hours.
	DefaultARIInterval = 6 * time.Hour
	// minIdle is the sleep of the daemon loop after a look at the store
	// found less work than it could take though the next job's time has
	// passed (another instance claimed it meanwhile, or many jobs are
	// leased): it bounds the loop's rate then. A time still to come is
	// slept to exactly (untilDue).
	minIdle = time.Second
)

// Deployer receives every certificate after it is archived (e.g. writes the
// files and runs the post-issue commands). An error is logged and reported;
// it does not make the issuance fail, since the certificate is safe in the
// archive and deploying is retried at the next sync.
type Deployer interface {
	Deploy(ctx context.Context, spec certfleet.CertificateSpec, iss certfleet.Issuance) error
}

// Manager schedules and runs renewal jobs. Set the fields, then call Run
// (daemon) or RunOnce (one pass). Fields must not change after the first call.
type Manager struct {
	// Store is required.
	Store certfleet.Store
	// Issuers maps account names (certfleet.CertificateSpec.AccountName)
	// to the Issuer ordering with that account. Required.
	Issuers map[string]certfleet.Issuer
	// ResolveIssuer, if set, returns the Issuer of an account name that
	// Issuers lacks (an account declared at runtime, issue 12), or an
	// ENOTFOUND error. It is called for every decision on such a job, so
	// a change of the account is seen at once; it should cache.
	ResolveIssuer func(ctx context.Context, account string) (certfleet.Issuer, error)
	// Deployer, if set, gets every new certificate.
	Deployer Deployer
	// Prepare, if set, runs before an order is placed or resumed (never
	// for a job that is not due), e.g. to open a firewall port; done, if
	// non-nil, runs when the order has ended, issued or failed. An error
	// fails the attempt (with backoff) without contacting the CA.
	Prepare func(ctx context.Context, spec certfleet.CertificateSpec) (done func(), err error)
	// Instance names this manager as lease owner. Default: host-pid-random.
	Instance string
	// Concurrency bounds jobs worked on at once. Default DefaultConcurrency.
	Concurrency int
	// Lease is the lease length (the takeover time of config's
	// [scheduler]): it is extended every Heartbeat while a job runs.
	// Default DefaultLease.
	Lease time.Duration
	// Heartbeat is how often a running job's lease is extended. Default
	// Lease/DefaultHeartbeatDivisor; it must be well under Lease.
	Heartbeat time.Duration
	// PollInterval caps the daemon's sleep. Default DefaultPollInterval.
	PollInterval time.Duration
	// ARIInterval is how often renewalInfo is refreshed absent Retry-After.
	// Default DefaultARIInterval.
	ARIInterval time.Duration
	// Now and Rand are the clock and the randomness (in [0,1)) for backoff
	// jitter. Defaults: time.Now and certfleet.RandFloat.
	Now  func() time.Time
	Rand func() float64
	// Logger receives log records; nil discards them.
	Logger *slog.Logger
	// Events, if set, receives an event for every issuance, renewal,
	// failed attempt and deploy result (the audit trail, metrics, alerts).
	// Its errors are logged; they never fail the work.
	Events certfleet.EventSink
	// Budget, if set, is consulted just before each new order is placed
	// (not when an order in flight is resumed) and told how the attempt
	// ended (package ratelimit). Work it refuses with a
	// *certfleet.DeferError is deferred to the time it names: recorded as
	// an attempt with OutcomeDeferred and emitted as EventDeferred, and
	// neither counted as a failure nor backed off.
	Budget certfleet.Budget
	// SelfTester, if set, tests names not yet proven before they are
	// ordered (first issuance, names new to a certificate, after a failed
	// attempt): a name that fails waits, out of the order, and is
	// re-tested after RetestMin, doubling up to RetestMax (defaults
	// certfleet.DefaultRetestMin and DefaultRetestMax). Certificates with
	// NoSelfTest skip it. See selftest.go.
	SelfTester           certfleet.SelfTester
	RetestMin, RetestMax time.Duration
	// PackDelay is how long a change of a certificate requested over the
	// API (a new pack, a name added or withdrawn) waits before it is
	// ordered, so that requests arriving together share one order and a
	// burst of changes re-packs once. It counts from the first change
	// not yet ordered (certfleet.Job.ChangedAt, kept in the store); a
	// renewal, a retry after a failure, an operator's retry and a
	// RunOnce pass do not wait. Zero (the default here; the config's is
	// config.DefaultPackDelay) orders at once.
	PackDelay time.Duration

	once    sync.Once
	wake    chan struct{} // buffered(1); a send means "look at the store now"
	outages outages       // the CAs' circuit breaker (outage.go)
	orders  orderTimes    // how long orders take (orderduration.go)
}

func (m *Manager) init() {
	m.once.Do(func() {
		if m.Concurrency <= 0 {
			m.Concurrency = DefaultConcurrency
		}
		if m.Lease <= 0 {
			m.Lease = DefaultLease
		}
		if m.Heartbeat <= 0 || m.Heartbeat >= m.Lease {
			m.Heartbeat = m.Lease / DefaultHeartbeatDivisor
		}
		if m.PollInterval <= 0 {
			m.PollInterval = DefaultPollInterval
		}
		if m.ARIInterval <= 0 {
			m.ARIInterval = DefaultARIInterval
		}
		if m.Now == nil {
			m.Now = time.Now
		}
		if m.Rand == nil {
			m.Rand = certfleet.RandFloat
		}
		if m.Logger == nil {
			m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		if m.Instance == "" {
			m.Instance = DefaultInstance()
		}
		m.wake = make(chan struct{}, 1)
	})
}

// Wake makes a running daemon look at the store at once (new specs, an
// operator's retry). It never blocks.
func (m *Manager) Wake() {
	m.init()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}
