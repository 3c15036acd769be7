// Package agent is certfleet's host side: it keeps the certificates a host
// needs in sync with a certfleet server, over the HTTP API (httpapi.Client).
// For each certificate it long-polls the server, writes the files the host's
// services read (certificate, chain, full chain, key, or one combined PEM
// for HAProxy) atomically and key first, runs the reload commands once per
// change, and reports what it installed back to the server (the fleet view).
// In CSR mode it makes the key on the host, submits a CSR and installs the
// certificate, so the key never leaves the host.
//
// It does not issue certificates (the server does), serve anything, or run
// commands through a shell. The configuration file is parsed by
// config.LoadAgent and mapped onto a Config by FromFile; cmd/certfleet's
// agent command adds the logger and test mode's printing.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
)

// Defaults of Config's zero fields.
const (
	// DefaultWait is the long-poll: under the server's cap (55 s) and
	// common proxy idle timeouts (60 s).
	DefaultWait = 50 * time.Second
	// DefaultResync is the full resync: every file is compared with the
	// server's copy (healing files changed on disk) and the agent checks
	// in, even when no long-poll woke it. Jittered by up to a tenth.
	DefaultResync = 10 * time.Minute
	// DefaultMaxBackoff caps the wait between attempts while the server
	// is unreachable: 1 s doubling, jittered, to this.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultRenewFraction: in CSR mode a new key is made once the key in
	// use is older than this fraction of its certificate's lifetime. The
	// server renews a CSR-mode certificate by itself at two thirds of its
	// lifetime (or half, for 10 days or less) with the CSR it has, so the
	// same key; the agent's rotation at half is what brings a new key.
	DefaultRenewFraction = 0.5
	// DefaultKeyType is the key type CSR mode makes.
	DefaultKeyType = certfleet.ECDSAP256
)

// Config configures an Agent.
type Config struct {
	// Name identifies the agent in the fleet view; default the host name.
	Name string
	// Client talks to the server (its Token is never logged). Required.
	Client *httpapi.Client
	// StateDir keeps what must survive a restart: which certificate's
	// commands last succeeded (so a failed command is retried, and a
	// restart does not re-run commands for unchanged files), and in CSR
	// mode the pending key (mode 0600) and the key's age. Run and Once
	// create it mode 0700 (and tighten one readable by others). "" keeps
	// it in memory only; CSR mode requires it.
	StateDir string
	// Certificates are the certificates the host needs.
	Certificates []Certificate
	// Wait, Resync, MaxBackoff: see DefaultWait, DefaultResync,
	// DefaultMaxBackoff.
	Wait, Resync, MaxBackoff time.Duration
	// Logger receives events; nil discards.
	Logger *slog.Logger
	// Now is the clock (CSR-mode key age); default time.Now.
	Now func() time.Time
	// Identity, when set, is the host identity Client presents (issue
	// 17): Run renews it at half its lifetime, Once when that is past.
	Identity *Identity
	// PrintCommands, when set, receives one line per command instead of
	// running it (test mode, certfleet agent --staging): the commands count
	// as succeeded and are not reported to the server.
	PrintCommands io.Writer
}

// Certificate is one certificate the host needs, and where it goes.
type Certificate struct {
	// Name is a name of the certificate, as in the API's
	// /v1/names/{name}: the server serves the certificate holding it.
	Name string
	// Key picks one of a dual certificate: "rsa" or "ecdsa" ("" for the
	// server's default, ECDSA). In CSR mode it is ignored.
	Key string
	// Files are the paths to write; at least one.
	Files Files
	// Owner and Group own the files (names or numeric ids); "" leaves
	// them as the agent's user makes them.
	Owner, Group string
	// KeyMode is the mode of Files.Key and Files.Combined; default 0600.
	// CertMode that of the others; default 0644.
	KeyMode, CertMode os.FileMode
	// Commands run, in order and without a shell, after a change (see
	// Agent). Environment: CERTFLEET_NAME, CERTFLEET_NAMES,
	// CERTFLEET_KEY_TYPE, CERTFLEET_SERIAL, CERTFLEET_FINGERPRINT,
	// CERTFLEET_NOT_AFTER and CERTFLEET_{CERT,CHAIN,FULLCHAIN,KEY,COMBINED}_PATH
	// (empty when not written).
	Commands [][]string
	// CommandTimeout bounds each command; default deploy.DefaultTimeout.
	CommandTimeout time.Duration
	// CSR puts the certificate in CSR mode: the agent makes the key,
	// submits a CSR for Identifiers (needs the request-names permission)
	// and never sends the key anywhere.
	CSR bool
	// KeyType is the key CSR mode makes; default DefaultKeyType.
	KeyType certfleet.KeyType
	// Identifiers are the CSR's names; default [Name]. Name must be one.
	Identifiers []string
	// RenewFraction: see DefaultRenewFraction.
	RenewFraction float64
}

// Files are the paths a certificate is written to. Empty fields are not
// written.
type Files struct {
	Cert      string // the end-entity certificate
	Chain     string // the intermediates
	Fullchain string // certificate then intermediates
	Key       string // the private key (PKCS #8)
	// Combined is one PEM with the key followed by the full chain, as
	// HAProxy's crt and similar take it.
	Combined string
}

func (f Files) all() []string {
	var out []string
	for _, p := range []string{f.Key, f.Combined, f.Cert, f.Chain, f.Fullchain} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// needsKey reports whether a key must be written.
func (f Files) needsKey() bool { return f.Key != "" || f.Combined != "" }

// Agent keeps a host's certificates in sync. Make it with New.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	watchers []*watcher
}

var stateNameRE = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// New checks cfg and returns an Agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Client == nil || cfg.Client.BaseURL == "" {
		return nil, errors.New("agent: no server URL")
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent: no name given and the host name is unknown: %w", err)
		}
		cfg.Name = h
	}
	if err := certfleet.ValidateAgentName(cfg.Name); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Agent{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Certificates) == 0 {
		return nil, errors.New("agent: no certificates configured")
	}
	seen := map[string]bool{}
	for i, c := range cfg.Certificates {
		if err := c.check(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("agent: certificate %d (%s): %w", i+1, c.Name, err)
		}
		if c.KeyType == "" {
			c.KeyType = DefaultKeyType
		}
		if len(c.Identifiers) == 0 {
			c.Identifiers = []string{c.Name}
		}
		if c.RenewFraction <= 0 || c.RenewFraction >= 1 {
			c.RenewFraction = DefaultRenewFraction
		}
		if c.KeyMode == 0 {
			c.KeyMode = 0o600
		}
		if c.CertMode == 0 {
			c.CertMode = 0o644
		}
		id := stateNameRE.ReplaceAllString(c.Name, "_")
		if c.Key != "" {
			id += "." + c.Key
		}
		if seen[id] {
			return nil, fmt.Errorf("agent: certificate %d: %s is listed twice", i+1, id)
		}
		seen[id] = true
		for _, p := range c.Files.all() {
			if seen["file:"+p] {
				return nil, fmt.Errorf("agent: certificate %d (%s): %s is written by another certificate too", i+1, c.Name, p)
			}
			seen["file:"+p] = true
		}
		a.watchers = append(a.watchers, &watcher{a: a, c: c, id: id})
	}
	return a, nil
}

func (c Certificate) check(stateDir string) error {
	if c.Name == "" {
		return errors.New("no name")
	}
	if _, err := certfleet.ParseIdentifier(c.Name); err != nil {
		return err
	}
	switch c.Key {
	case "", "rsa", "ecdsa":
	default:
		return fmt.Errorf("key %q: use rsa or ecdsa", c.Key)
	}
	if len(c.Files.all()) == 0 {
		return errors.New("no files to write: set cert, chain, fullchain, key or combined")
	}
	for _, p := range c.Files.all() {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("file %q: give an absolute path", p)
		}
	}
	for i, argv := range c.Commands {
		if len(argv) == 0 || argv[0] == "" {
			return fmt.Errorf("command %d is empty", i+1)
		}
	}
	if c.KeyMode&0o007 != 0 {
		return fmt.Errorf("key mode %#o lets every user read the key; use 0600 or 0640", c.KeyMode)
	}
	if c.CSR {
		if stateDir == "" {
			return errors.New("CSR mode needs a state directory (for the pending key)")
		}
		if !c.Files.needsKey() {
			return errors.New("CSR mode makes the key on this host: set key or combined to say where it goes")
		}
		if c.KeyType != "" {
			if _, err := certfleet.ParseKeyType(string(c.KeyType)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Name returns the agent's name.
func (a *Agent) Name() string { return a.cfg.Name }

// Once syncs every certificate once, without waiting for changes: for
// cron. The error joins every certificate's failure (the server
// unreachable, a file not written, a command failed, the report not
// delivered); files already on disk are kept in every case.
func (a *Agent) Once(ctx context.Context) error {
	started := time.Now()
	if err := a.prepareStateDir(); err != nil {
		return err
	}
	a.removeStaleTemp(started)
	if id := a.cfg.Identity; id != nil && !a.cfg.Now().Before(id.RenewAt()) {
		if err := id.Renew(ctx, a.cfg.Client); err != nil {
			a.log.Warn("renew the host identity", "identity", id.ID(), certfleet.LogError, err)
		}
	}
	errs := make([]error, len(a.watchers))
	var wg sync.WaitGroup
	for i, w := range a.watchers {
		wg.Go(func() {
			errs[i] = w.sync(ctx, 0, true)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Run keeps every certificate in sync until ctx ends: a long-poll per
// certificate, a full resync every Resync, and backoff while the server is
// unreachable. It returns ctx's error.
func (a *Agent) Run(ctx context.Context) error {
	started := time.Now()
	if err := a.prepareStateDir(); err != nil {
		return err
	}
	a.removeStaleTemp(started)
	var wg sync.WaitGroup
	if id := a.cfg.Identity; id != nil {
		wg.Go(func() { id.keepRenewed(ctx, a.cfg.Client, a.log, a.cfg.MaxBackoff) })
	}
	for _, w := range a.watchers {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	return ctx.Err()
}

func (w *watcher) run(ctx context.Context) {
	a := w.a
	backoff := time.Duration(0)
	nextResync := time.Time{} // the first pass is a full one
	for ctx.Err() == nil {
		full := !time.Now().Before(nextResync)
		wait := a.cfg.Wait
		if full {
			wait = 0
		}
		err := w.sync(ctx, wait, full)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = min(max(2*backoff, time.Second), a.cfg.MaxBackoff)
			d := backoff/2 + rand.N(backoff/2+1)
			a.log.Warn("sync failed; keeping the files on disk, retrying", certfleet.LogIdentifier, w.c.Name,
				"retry_in", d.Round(time.Millisecond), certfleet.LogError, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			nextResync = time.Time{} // after an outage, check everything
			continue
		}
		if backoff > 0 {
			a.log.Info("server reachable again", certfleet.LogIdentifier, w.c.Name)
			backoff = 0
		}
		if full {
			nextResync = time.Now().Add(a.cfg.Resync - rand.N(a.cfg.Resync/10+1))
		}
	}
}
