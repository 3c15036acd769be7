// Package config reads certfleet's TOML configuration file: the store, the
// logger, the ACME accounts, the built-in challenge responders, renewal
// settings and the [[certificate]] list with where each one is written.
//
// Parse checks the whole file before returning, and reports every problem at
// once in an *Error whose lines name the file, line and field. A Config it
// returns is complete: defaults are applied, directory aliases are resolved
// to URLs, relative paths are made absolute (against the config file's
// directory) and every certificate's spec passes
// certfleet.CertificateSpec.Validate.
//
// The package does no I/O beyond reading the file in Load: it neither opens
// the store, nor reads trusted_roots, nor checks that users, groups or
// directories exist. cmd/certfleet does that when it wires the daemon, and
// is the only package that should import this one.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
)

// Defaults for keys the file leaves out.
const (
	// DefaultState is where the SQLite database lives when state is unset.
	DefaultState = "/var/lib/certfleet/certfleet.db"
	// DefaultHTTP01Listen and DefaultTLSALPN01Listen are the ports the CA
	// connects to (RFC 8555 §8.3: http-01 on port 80; RFC 8737 §3:
	// tls-alpn-01 on port 443).
	DefaultHTTP01Listen    = ":80"
	DefaultTLSALPN01Listen = ":443"
	// DefaultConcurrency is how many orders run at once. Eight keeps a
	// large renewal wave short without approaching any public CA's
	// per-account rate limits.
	DefaultConcurrency = 8
	// DefaultOutputDir is where certificates are written, one directory
	// per certificate name.
	DefaultOutputDir = "/etc/certfleet/live"
	// DefaultKeyMode keeps private keys readable by their owner only.
	DefaultKeyMode fs.FileMode = 0o600
	// DefaultKeyType is the key type of certificates that name none: ECDSA
	// P-256 is accepted by every current client and is far cheaper than RSA.
	DefaultKeyType = certfleet.ECDSAP256
	// DefaultChallenge is the challenge of certificates that name none.
	DefaultChallenge = certfleet.ChallengeHTTP01
)

// Directory aliases accepted in place of a CA's directory URL.
var directoryAliases = map[string]string{
	"letsencrypt":         "https://acme-v02.api.letsencrypt.org/directory",
	"letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
	"zerossl":             "https://acme.zerossl.com/v2/DV90",
}

// Config is a decoded, validated configuration with defaults applied.
type Config struct {
	// File is the path of the configuration file, as given.
	File string
	// State locates the store: an absolute path to the SQLite database, or
	// a postgres:// (or postgresql://) URL, kept as written but for the
	// scheme, which is lower-cased.
	State string
	// StateDir is where files beside the store are kept (the dns-01
	// journal, acme-dns credentials): state_dir, by default the SQLite
	// database's directory, or /var/lib/certfleet with PostgreSQL.
	StateDir string
	// MasterKey locates the master key that encrypts private keys in the
	// store (see keys.go).
	MasterKey MasterKey
	// Log configures the daemon's logger.
	Log Log
	// HTTP01Listen is the address of the built-in http-01 responder, ""
	// when disabled. Default DefaultHTTP01Listen. Whether it runs: see
	// RespondsTo.
	HTTP01Listen string
	// TLSALPN01Listen is the address of the built-in tls-alpn-01 responder,
	// "" when disabled. Default DefaultTLSALPN01Listen.
	TLSALPN01Listen string
	// HTTP01ListenSet and TLSALPN01ListenSet report whether the file sets
	// the address itself, which, with the API served, starts the responder
	// whatever the certificates (see RespondsTo).
	HTTP01ListenSet, TLSALPN01ListenSet bool
	// Webroots maps the names of [webroots] to absolute directories: the
	// web roots that certificates requested over the API may name.
	Webroots map[string]string
	// Renewal holds the scheduler's settings.
	Renewal Renewal
	// Scheduler holds how instances hand work over ([scheduler], see
	// scheduler.go).
	Scheduler Scheduler
	// DNS01 configures dns-01: the DNS providers and propagation checks.
	DNS01 DNS01
	// CAAIdentities maps account names to the caa_identities they set:
	// the issuer domain names of their CA's CAA records (RFC 8659 §4.2).
	// See CAA for the defaults.
	CAAIdentities map[string][]string
	// Accounts maps account names to ACME accounts. [ca] is
	// certfleet.DefaultAccount ("default"), present when [ca] names a
	// directory; [accounts.NAME] tables add the others.
	Accounts map[string]Account
	// Certificates are the [[certificate]] entries, in file order.
	Certificates []Certificate
	// API configures the HTTP API ([api], see api.go).
	API API
	// Identities configures host identities ([identities]; issue 17).
	Identities Identities
	// Staging configures test mode ([staging], see deploy.go).
	Staging Staging
	// Deploy holds the actions for every certificate ([deploy], see
	// deploy.go).
	Deploy Deploy
	// Alerts configures expiry and failure alerts ([alerts], see
	// alerts.go).
	Alerts Alerts
	// RateLimits maps CA directory URLs to the rate limits configured for
	// them ([rate_limits."CA"], see ratelimit.go); CAs not listed keep
	// their defaults.
	RateLimits map[string]RateLimits
	// SelfTest is [self_test]: names tested before they are ordered
	// (selftest.go, docs/readiness.md).
	SelfTest SelfTest
	// Metrics configures the Prometheus endpoint ([metrics], see
	// metrics.go).
	Metrics Metrics
	// Inventory lists the [inventory.NAME] sources of certificates kept
	// outside this file, by name (see inventory.go).
	Inventory []Inventory
	// Events configures the events sent to hooks ([events], see
	// events.go).
	Events Events
	// Export configures certfleet export ([export], see export.go).
	Export Export
	// certPos is where each of Certificates is in the file (CheckHost).
	certPos []certPos
}

// Log configures logging.
type Log struct {
	Level  slog.Level // default slog.LevelInfo
	Format string     // "text" (default) or "json"
}

// Renewal configures the renewal scheduler.
type Renewal struct {
	// Concurrency is how many orders may run at once. Default
	// DefaultConcurrency.
	Concurrency int
	// RenewBefore is the renew_before of certificates that set none; zero
	// means automatic (see certfleet.CertificateSpec.RenewBefore).
	RenewBefore time.Duration
	// RenewAfter is the renew_after of certificates that set none: renew
	// once a certificate is this old (lematt's generateNewCertsAfterDays);
	// zero means not by age (see certfleet.CertificateSpec.RenewAfter).
	RenewAfter time.Duration
}

// Account is one ACME account at one CA.
type Account struct {
	// Name is the account's name: certfleet.DefaultAccount for [ca].
	Name string
	// Directory is the CA's directory URL (aliases resolved). An
	// [accounts.NAME] table without one uses [ca]'s.
	Directory string
	// TrustedRoots is the absolute path of a PEM file with extra roots to
	// trust for the CA's own HTTPS (a private CA such as step-ca or
	// Pebble), or "". Inherited from [ca] along with the directory.
	TrustedRoots string
	// Email is the contact address, or "".
	Email string
	// EABKeyID and EABHMACKey are the External Account Binding credentials
	// (RFC 8555 §7.3.4), both set or both "". EABHMACKey is the base64url
	// MAC key exactly as the CA issued it. It is a secret: Account's
	// String, GoString and LogValue leave it out.
	EABKeyID   string
	EABHMACKey string
}

// Contact returns the account's contact URLs (RFC 8555 §7.3: "mailto:"
// URLs), or nil.
func (a Account) Contact() []string {
	if a.Email == "" {
		return nil
	}
	return []string{"mailto:" + a.Email}
}

// String describes the account without its EAB MAC key.
func (a Account) String() string {
	eab := ""
	if a.EABKeyID != "" {
		eab = " eab_key_id=" + a.EABKeyID
	}
	return fmt.Sprintf("account %s at %s%s", a.Name, a.Directory, eab)
}

// GoString is String, so that %#v cannot print the MAC key either.
func (a Account) GoString() string { return a.String() }

// LogValue keeps the EAB MAC key out of logs.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", a.Name),
		slog.String(certfleet.LogCA, a.Directory),
		slog.String("eab_key_id", a.EABKeyID),
	)
}

// Certificate is one [[certificate]] entry.
type Certificate struct {
	// Spec is what to obtain, with Source certfleet.SourceConfig.
	Spec certfleet.CertificateSpec
	// Webroot is the absolute directory that the web server serves
	// /.well-known/acme-challenge/ from, for challenge "webroot"; "" for
	// other challenges.
	Webroot string
	// DNSProvider names the [dns01.providers] entry that writes the
	// records of a dns-01 certificate; "" for other challenges.
	DNSProvider string
	// Output says where and how the certificate is written.
	Output Output
	// Prepare commands run, in order and without a shell, before each
	// order is placed or resumed (open a firewall port, start a
	// forwarder); Cleanup commands run after the order ended, issued or
	// failed. Argv lists; [defaults] gives them to certificates without.
	Prepare, Cleanup [][]string
	// Helpers are long-running prepare commands, started after Prepare
	// and stopped before Cleanup (prepare_helpers); [defaults] gives them
	// to certificates without.
	Helpers []Helper
	// Endpoints are where the certificate is served, checked after each
	// renewal and on a schedule: is the newest certificate the one served?
	// Each has its protocol, port and SNI name filled in (the SNI name
	// defaults to the certificate's first DNS identifier).
	Endpoints []endpoint.Target
}

// Output says where a certificate and its key are written and what runs
// afterwards.
type Output struct {
	// Dir is the absolute directory the files go to, or "" when the
	// certificate is only kept in the store (output_dir = "").
	Dir string
	// Owner and Group own the written files ("" keeps the daemon's);
	// user and group names or numeric IDs, not looked up here.
	Owner, Group string
	// KeyMode is the permission of the private key file. Default
	// DefaultKeyMode.
	KeyMode fs.FileMode
	// Commands run, in order and without a shell, after new files were
	// written; each is an argv list.
	Commands [][]string
	// Copies are extra files the certificate is written to (copy), after
	// the files of Dir; see Certificate.CopyPaths.
	Copies []Copy
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a configuration file's contents. filename names the file in
// problems, and its directory is what relative paths in the file are
// relative to. Any problem is reported in an *Error listing all of them.
func Parse(filename string, data []byte) (*Config, error) {
	cfg, err := decode(filename, data, (*decoder).config)
	if err != nil {
		return nil, err
	}
	cfg.File = filename
	return cfg, nil
}

// decode parses a TOML document and decodes it with top, reporting
// syntax errors and every problem top found in one *Error. Relative paths
// in the document are relative to filename's directory.
func decode[T any](filename string, data []byte, top func(*decoder, map[string]any) T) (T, error) {
	var zero T
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return zero, &Error{Problems: []Problem{syntaxProblem(filename, data, err)}}
	}
	base, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		return zero, fmt.Errorf("resolve config directory: %w", err)
	}
	d := &decoder{file: filename, src: string(data), base: base}
	v := top(d, doc)
	if len(d.problems) > 0 {
		sortProblems(d.problems)
		return zero, &Error{Problems: d.problems}
	}
	return v, nil
}

// syntaxProblem turns a TOML parser error into a Problem. A syntax error on
// the eab_hmac_key line is reported without the parser's message, which may
// quote the secret.
func syntaxProblem(filename string, data []byte, err error) Problem {
	p := Problem{File: filename, Message: err.Error()}
	var pe toml.ParseError
	if errors.As(err, &pe) {
		p.Line, p.Column, p.Message = pe.Position.Line, pe.Position.Col, pe.Message
		// The parser counts a line as soon as it reads its newline, so an
		// error at the end of a line ("[[certificate]" followed by '\n')
		// is reported on the next one. The byte offset is exact.
		if st := pe.Position.Start; st >= 0 && st <= len(data) {
			p.Line = bytes.Count(data[:st], []byte("\n")) + 1
			p.Column = st - (bytes.LastIndexByte(data[:st], '\n') + 1) + 1
		}
		if secretOnLine(data, pe.Position.Line) || strings.HasSuffix(pe.LastKey, "eab_hmac_key") {
			p.Message = "syntax error at eab_hmac_key (the value is a secret and not shown); write it as a quoted string"
		} else if key := dnsSecretOnLine(data, pe.Position.Line, pe.LastKey); key != "" {
			p.Message = "syntax error at " + key + " (the value is a secret and not shown); write it as a quoted string"
		}
	}
	return p
}

// Specs returns the certificates' specs, in file order. The slices are
// copies: changing them does not change c.
func (c *Config) Specs() []certfleet.CertificateSpec {
	specs := make([]certfleet.CertificateSpec, len(c.Certificates))
	for i, cert := range c.Certificates {
		s := cert.Spec
		s.Identifiers = slices.Clone(s.Identifiers)
		s.KeyTypes = slices.Clone(s.KeyTypes)
		specs[i] = s
	}
	return specs
}

// Certificate returns the certificate named name.
func (c *Config) Certificate(name string) (Certificate, bool) {
	for _, cert := range c.Certificates {
		if cert.Spec.Name == name {
			return cert, true
		}
	}
	return Certificate{}, false
}

// Uses reports whether any certificate is validated with challenge ct, or
// any inventory source's certificates are by default, so that
// cmd/certfleet starts only the responders that are needed.
func (c *Config) Uses(ct certfleet.ChallengeType) bool {
	for _, cert := range c.Certificates {
		if cert.Spec.Challenge == ct {
			return true
		}
	}
	for _, inv := range c.Inventory {
		if inv.defs.challenge == ct {
			return true
		}
	}
	return false
}

// DefaultStateDir is state_dir's default for a store: the SQLite database's
// directory, or /var/lib/certfleet for a PostgreSQL URL.
func DefaultStateDir(state string) string {
	if strings.Contains(state, "://") {
		return "/var/lib/certfleet"
	}
	return filepath.Dir(state)
}
