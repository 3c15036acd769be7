// Package selftest checks, before certfleet orders a certificate, that
// each of its names can pass its challenge now, the way the CA would see
// it (issue 14): for http-01 a probe token stored where every certfleet
// responder answers it, fetched from http://NAME/.well-known/acme-challenge/
// with NAME resolved through the configured resolvers and redirects
// followed as a CA follows them; for tls-alpn-01 a probe acme-tls/1
// handshake; for dns-01 the dns-01 solver's preflight (zone, CNAME
// delegation, provider credentials) and the delegation as the public
// resolvers see it; for dns-persist-01 the persistent TXT record that
// authorizes this account (draft-ietf-acme-dns-persist).
//
// Tester implements certfleet.SelfTester; the scheduler (manager) consults
// it and keeps the waiting state in the store. This package keeps no state,
// places no order and never writes a DNS record (a dns-01 preflight may
// ask the provider whether it could). It does not decide what a failed
// test means for an order: that is the manager's.
package selftest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/dns01"
)

// Defaults of Tester's zero fields.
const (
	// DefaultTimeout bounds one name's test. A CA gives up on a
	// validation fetch after about 10 s (Let's Encrypt); a probe that takes
	// longer would fail there too.
	DefaultTimeout = 10 * time.Second
	// DefaultConcurrency bounds names tested at once per call.
	DefaultConcurrency = 8
	// DefaultPersistWarning is how long before a dns-persist-01 record's
	// persistUntil the self-test warns (ours: one renewal cycle of a
	// 90-day certificate, time for a person to publish a new record).
	DefaultPersistWarning = 30 * 24 * time.Hour
)

// Tester tests names as a CA would. Set the fields, then call SelfTest;
// they must not change afterwards. Safe for concurrent use.
type Tester struct {
	// Store holds the probe tokens the responders answer (http-01,
	// tls-alpn-01). Required for those challenges.
	Store certfleet.ChallengeStore
	// Resolver resolves names as the CA would: its Nameservers are the
	// configured resolvers (default: the system's, /etc/resolv.conf).
	Resolver *dns01.Resolver
	// HTTPPort and TLSPort are the ports the probes dial where a CA dials
	// 80 and 443 (RFC 8555 §8.3, RFC 8737 §3). Default 80 and 443; tests
	// whose CA validates on other ports set them.
	HTTPPort, TLSPort int
	// DNS01 is the dns-01 solver whose preflight dns-01 names run; nil
	// makes dns-01 names wait with a reason saying no provider is set.
	DNS01 *dns01.Solver
	// Persist returns what a dns-persist-01 record must name for an
	// account: its URL and the CA's issuer domain names. Nil makes
	// dns-persist-01 names wait.
	Persist func(ctx context.Context, account string) (certfleet.PersistIdentity, error)
	// PersistWarning: see DefaultPersistWarning.
	PersistWarning time.Duration
	// Timeout and Concurrency: see DefaultTimeout, DefaultConcurrency.
	Timeout     time.Duration
	Concurrency int
	// Now is the clock (persistUntil). Default time.Now.
	Now func() time.Time
	// Logger receives warnings (a persistUntil ahead); nil discards.
	Logger *slog.Logger
}

var _ certfleet.SelfTester = (*Tester)(nil)

// SelfTest implements certfleet.SelfTester. It tests each identifier with
// spec's challenge, at most Concurrency at once. Webroot names pass
// untested: their answer is a file another web server serves, which a
// probe in the store cannot show (a limit, docs/readiness.md).
func (t *Tester) SelfTest(ctx context.Context, spec certfleet.CertificateSpec, ids []certfleet.Identifier) ([]certfleet.SelfTestResult, error) {
	out := make([]certfleet.SelfTestResult, len(ids))
	conc := t.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = certfleet.SelfTestResult{Identifier: id, Code: certfleet.WaitProbe, Reason: "self-test cancelled: " + ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			out[i] = t.test(ctx, spec, id)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// test tests one name.
func (t *Tester) test(ctx context.Context, spec certfleet.CertificateSpec, id certfleet.Identifier) certfleet.SelfTestResult {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var code, reason string
	switch spec.Challenge {
	case certfleet.ChallengeHTTP01:
		code, reason = t.testHTTP(ctx, id)
	case certfleet.ChallengeTLSALPN01:
		code, reason = t.testTLSALPN(ctx, id)
	case certfleet.ChallengeDNS01:
		code, reason = t.testDNS01(ctx, spec, id)
	case certfleet.ChallengeDNSPersist01:
		code, reason = t.testPersist(ctx, spec, id)
	default:
		return certfleet.SelfTestResult{Identifier: id} // nothing to test: the CA decides
	}
	return certfleet.SelfTestResult{Identifier: id, Code: code, Reason: reason}
}

func (t *Tester) resolver() *dns01.Resolver {
	if t.Resolver != nil {
		return t.Resolver
	}
	return &dns01.Resolver{}
}

func (t *Tester) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Tester) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// probeSecret returns a fresh random token: probe tokens and key
// authorizations are unguessable, so a probe never answers a real
// validation and nothing but certfleet can echo one.
func probeSecret(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// probeTTL is how long a probe token stays in the store if its clean-up
// is lost (a crash mid-test).
const probeTTL = 5 * time.Minute

func fmtAddrs(addrs []string) string {
	if len(addrs) == 1 {
		return addrs[0]
	}
	return fmt.Sprint(addrs)
}
