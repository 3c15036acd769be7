// Package acmeissuer implements certfleet.Issuer and certfleet.RenewalInfoer
// for any RFC 8555 CA, on the low-level client of github.com/mholt/acmez
// (acmez/v3/acme). One Issuer talks to one CA with one account.
//
// It runs the order flow itself (RFC 8555 §7.1, §7.4) instead of acmez's
// porcelain, because certfleet needs to: resume an order placed before a
// crash (IssueRequest.ResumeOrderURL); hand the order URL to the caller
// before any challenge is answered (IssueRequest.OnOrder); solve all the
// authorizations of an order at once (present all, wait, answer all, poll
// all concurrently; the porcelain polls them one after another); send
// "replaces" (RFC 9773 §5) and profiles; and clean up every presented
// challenge even after cancellation.
//
// It does not schedule, retry whole orders or store certificates: that is
// the manager's job. Errors are classified for it: the CA's acme.Problem
// stays reachable with errors.As; rate limits and Retry-After come as
// *certfleet.RetryAfterError; refusals that retrying cannot fix are wrapped
// in certfleet.ErrNoRetry; an unreachable or failing CA has the code
// certfleet.EUNAVAILABLE.
//
// It does not answer challenges either: that is what the Solvers in Config
// do (package solver/...).
package acmeissuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/mholt/acmez/v3/acme"
)

// Defaults of Config.
const (
	// DefaultPollInterval is the first wait before polling an
	// authorization or order. Each further poll waits half as long again,
	// up to MaxPollInterval, unless the CA sends Retry-After, which wins.
	// 100 ms suits fast CAs (Pebble, step-ca, Let's Encrypt usually
	// validates within a second), and the growth keeps a slow validation
	// from costing many requests.
	DefaultPollInterval = 100 * time.Millisecond
	// MaxPollInterval caps the growth of the poll interval.
	MaxPollInterval = 3 * time.Second
	// DefaultPollTimeout bounds the wait for one authorization or for the
	// certificate once the order is finalized.
	DefaultPollTimeout = 5 * time.Minute
	// cleanupTimeout bounds each Solver.CleanUp call, which runs with a
	// context detached from the (possibly cancelled) issuance.
	cleanupTimeout = 30 * time.Second
)

// EAB is an External Account Binding (RFC 8555 §7.3.4): a key ID and the
// HMAC key the CA gave out of band.
type EAB struct {
	KeyID string
	// HMAC is the MAC key, base64url-encoded (without padding) as CAs
	// hand it out. Never logged.
	HMAC string
}

// LogValue keeps the HMAC key out of logs.
func (e EAB) LogValue() slog.Value { return slog.StringValue(e.KeyID) }

// Config configures an Issuer. DirectoryURL and Solvers are required.
type Config struct {
	// DirectoryURL is the CA's ACME directory (RFC 8555 §7.1.1).
	DirectoryURL string
	// TrustedRootsPEM are extra roots, besides the system's, trusted for
	// the CA's own TLS certificate (Pebble, a private step-ca). Used only
	// when HTTPClient is nil.
	TrustedRootsPEM []byte
	// HTTPClient talks to the CA. Nil means a client with a one-minute
	// timeout that trusts the system roots and TrustedRootsPEM. Its
	// Transport is wrapped (in a copy) to read Retry-After headers.
	HTTPClient *http.Client
	// UserAgent is prepended to acmez's User-Agent; default "certfleet".
	UserAgent string

	// Contact lists contacts for a new account: e-mail addresses (they
	// get "mailto:") or URLs. Existing accounts are not updated.
	Contact []string
	// AccountName names the account in Accounts; "" is
	// certfleet.DefaultAccount.
	AccountName string
	// EAB, when set, binds a new account to an external account.
	EAB *EAB
	// Accounts stores the account: it is created at the CA once per
	// (DirectoryURL, AccountName) and reused by every Issuer and every
	// instance. Nil keeps a new account in memory for the Issuer's life
	// (tests, demos).
	Accounts certfleet.AccountStore

	// Solvers answer challenges, keyed by the challenge a spec names
	// (http-01, webroot, tls-alpn-01, dns-01). webroot answers the ACME
	// challenge http-01 (see certfleet.ChallengeType.ACMEType).
	Solvers map[certfleet.ChallengeType]certfleet.Solver

	// PollInterval is the first poll delay; default DefaultPollInterval.
	PollInterval time.Duration
	// PollTimeout bounds each wait for an authorization or a
	// certificate; default DefaultPollTimeout.
	PollTimeout time.Duration

	// Observer, if set, is told of every request to the CA (endpoint,
	// status, latency) and every challenge's outcome: metrics.
	Observer Observer

	// Logger receives events (order placed, authorization failed); nil
	// discards them. Key authorizations and keys are never logged.
	Logger *slog.Logger
	// Now is the clock, for Retry-After times; default time.Now.
	Now func() time.Time
}

// Issuer obtains certificates from one CA with one account. It is safe
// for concurrent use; all its state besides the account is per call.
type Issuer struct {
	cfg    Config
	client *acme.Client
	logger *slog.Logger
	now    func() time.Time
	name   string
	alpnMu keyedMutex // serializes tls-alpn-01 per identifier
	acctMu sync.Mutex // guards acct, acctKeyPEM; held while the account is created or changed
	acct   *acme.Account
	// acctKeyPEM is the stored key acct was parsed from (nil: not from
	// the store), to notice a key rolled over elsewhere.
	acctKeyPEM []byte
	dirOnce    sync.Mutex // guards dir
	dir        *acme.Directory
	obs        *observer // nil without Config.Observer
	// ordersMu guards ordersOf, ordersURL: the account's orders list
	// (RFC 8555 §7.1.2.1) as last fetched, for the account URL ordersOf.
	ordersMu  sync.Mutex
	ordersOf  string
	ordersURL string
	noList    sync.Once  // the CA offers no orders list: said once
	walkMu    sync.Mutex // guards walk
	walk      *walk      // the newest walk of the orders list (placed.go)
}

var (
	_ certfleet.Issuer        = (*Issuer)(nil)
	_ certfleet.RenewalInfoer = (*Issuer)(nil)
	_ certfleet.CANamer       = (*Issuer)(nil)
)

// CA returns the CA's directory URL (certfleet.CANamer).
func (i *Issuer) CA() string { return i.cfg.DirectoryURL }

// New returns an Issuer. It does not contact the CA: the directory and the
// account are fetched on first use.
func New(cfg Config) (*Issuer, error) {
	if cfg.DirectoryURL == "" {
		return nil, certfleet.Errorf(certfleet.EINVALID, "acme issuer: no directory URL")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "certfleet"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(certfleet.LogCA, cfg.DirectoryURL)
	name := cfg.AccountName
	if name == "" {
		name = certfleet.DefaultAccount
	}

	hc := cfg.HTTPClient
	if hc == nil {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if len(cfg.TrustedRootsPEM) > 0 && !pool.AppendCertsFromPEM(cfg.TrustedRootsPEM) {
			return nil, certfleet.Errorf(certfleet.EINVALID, "acme issuer %s: no certificate in TrustedRootsPEM", cfg.DirectoryURL)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		tr.MaxIdleConnsPerHost = 32
		hc = &http.Client{Timeout: time.Minute, Transport: tr}
	} else {
		c := *hc
		hc = &c
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	var obs *observer
	if cfg.Observer != nil {
		obs = &observer{base: base, obs: cfg.Observer, ca: cfg.DirectoryURL}
		base = obs
	}
	hc.Transport = &transport{base: base, now: cfg.Now}

	return &Issuer{
		obs:    obs,
		cfg:    cfg,
		logger: logger,
		now:    cfg.Now,
		name:   name,
		client: &acme.Client{
			Directory:    cfg.DirectoryURL,
			HTTPClient:   hc,
			UserAgent:    cfg.UserAgent,
			PollInterval: cfg.PollInterval,
			PollTimeout:  cfg.PollTimeout,
			// acmez logs HTTP exchanges at debug (headers only, no
			// payloads) and retries at warn: demoted to debug, since
			// a CA outage is reported once by the scheduler (issue 16)
			// and every request is counted by the Observer.
			Logger: slog.New(demoted{logger.With("component", "acmez").Handler()}),
		},
	}, nil
}

// call runs one acmez request with a recorder in its context and
// classifies its error.
func (i *Issuer) call(ctx context.Context, f func(ctx context.Context) error) (*recorder, error) {
	rec := new(recorder)
	err := f(context.WithValue(ctx, recorderKey{}, rec))
	return rec, classify(err, rec, i.cfg.DirectoryURL)
}

// directory returns the CA's directory, fetched once.
func (i *Issuer) directory(ctx context.Context) (acme.Directory, error) {
	i.dirOnce.Lock()
	defer i.dirOnce.Unlock()
	if i.dir != nil {
		return *i.dir, nil
	}
	var dir acme.Directory
	_, err := i.call(ctx, func(ctx context.Context) error {
		var err error
		dir, err = i.client.GetDirectory(ctx)
		return err
	})
	if err != nil {
		return acme.Directory{}, fmt.Errorf("directory %s: %w", i.cfg.DirectoryURL, err)
	}
	i.dir = &dir
	if i.obs != nil {
		i.obs.dir.Store(&dir)
	}
	return dir, nil
}

// RenewalInfo asks the CA for the renewal window of leaf (RFC 9773 §4.2).
// It returns an ENOTFOUND error when the CA has no renewalInfo endpoint.
func (i *Issuer) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (certfleet.RenewalInfo, error) {
	dir, err := i.directory(ctx)
	if err != nil {
		return certfleet.RenewalInfo{}, err
	}
	if dir.RenewalInfo == "" {
		return certfleet.RenewalInfo{}, certfleet.Errorf(certfleet.ENOTFOUND, "the CA %s offers no renewal information (ARI)", i.cfg.DirectoryURL)
	}
	var ari acme.RenewalInfo
	_, err = i.call(ctx, func(ctx context.Context) error {
		var err error
		ari, err = i.client.GetRenewalInfo(ctx, leaf)
		return err
	})
	if errors.Is(err, acme.ErrUnsupported) {
		return certfleet.RenewalInfo{}, certfleet.Errorf(certfleet.ENOTFOUND, "the CA %s offers no renewal information (ARI)", i.cfg.DirectoryURL)
	}
	if err != nil {
		return certfleet.RenewalInfo{}, fmt.Errorf("renewal info for %s: %w", certfleet.ARICertID(leaf), err)
	}
	ri := certfleet.RenewalInfo{
		Start:          ari.SuggestedWindow.Start,
		End:            ari.SuggestedWindow.End,
		ExplanationURL: ari.ExplanationURL,
	}
	if ari.RetryAfter != nil {
		ri.RetryAfter = *ari.RetryAfter
	}
	return ri, nil
}
