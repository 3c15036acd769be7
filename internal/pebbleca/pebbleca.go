// Package pebbleca runs Let's Encrypt's Pebble test CA inside the process,
// on loopback, for tests and for `certfleet demo`.
//
// It builds Pebble from its Go packages (ca.New, va.New, wfe.New,
// db.NewMemoryStore, as Pebble's cmd/pebble does), serves the ACME API over
// TLS on 127.0.0.1 with a certificate made at start-up, serves the
// management API (root certificate at /roots/0, /set-renewal-info/, ...) on
// a second loopback listener, and runs a small DNS server (see DNS) that
// resolves every name to 127.0.0.1, so any hostname validates against
// responders on loopback. It counts the orders placed and finalized, so
// tests can assert that an order was not placed twice.
//
// It deliberately does not read or set environment variables. Pebble itself
// reads its knobs in its constructors; callers set them before Start, once
// (TestMain, cmd/certfleet demo):
//
//	PEBBLE_VA_NOSLEEP=1       no random 0–15 s delay before each validation
//	PEBBLE_WFE_NONCEREJECT=N  percentage of good nonces rejected (default 5)
//	PEBBLE_AUTHZREUSE=N       percentage of valid authorizations reused (default 50)
//	PEBBLE_VA_ALWAYS_VALID=1  skip validation entirely
//
// Pebble v2.10.1 wedges under bursts of more than about 16 orders in flight
// (every request blocked on its in-memory store's RWMutex; see
// /work/shared/REAL-COMPONENTS.md): keep one CA to 16 concurrent orders and
// bound every test in time.
//
// This is test infrastructure: it is no CA to trust for anything. For a real
// CA, point acmeissuer at its directory URL instead.
package pebbleca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Profile is an ACME profile the CA offers (draft-aaron-acme-profiles).
type Profile struct {
	Description string
	// ValidityPeriod is the lifetime of certificates issued under the
	// profile, in whole seconds. Zero means Pebble's default of 90 days.
	// Short periods (minutes) make renewal testable without a fake clock.
	ValidityPeriod time.Duration
}

// DefaultProfile is the name of the only profile a CA offers when
// Config.Profiles is empty.
const DefaultProfile = "default"

// Config configures a CA. The zero value is usable: one profile, no EAB,
// validation against port 80 and 443.
type Config struct {
	// HTTPPort is the port the CA's validator dials for http-01, on the
	// address the DNS server returns (127.0.0.1) or the IP identifier
	// itself. Zero means 80, as a real CA (RFC 8555 §8.3).
	HTTPPort int
	// TLSPort is the port it dials for tls-alpn-01. Zero means 443
	// (RFC 8737 §3).
	TLSPort int
	// Profiles the CA offers, by name. Empty means one profile,
	// DefaultProfile, with the default validity. Pebble picks a random
	// profile for an order that names none, so with more than one profile
	// every order should name one for the result to be predictable.
	Profiles map[string]Profile
	// RequireEAB makes newAccount require External Account Binding
	// (RFC 8555 §7.3.4); EABKeys maps key IDs to base64url HMAC keys.
	RequireEAB bool
	EABKeys    map[string]string
	// RetryAfterAuthz and RetryAfterOrder, in seconds, make Pebble send
	// Retry-After on pending authorizations and processing orders. Zero
	// sends none.
	RetryAfterAuthz, RetryAfterOrder int
	// Logger receives Pebble's own log lines at debug level. Nil discards
	// them.
	Logger *slog.Logger
	// ResolverAddr, when set ("127.0.0.1:port"), is the DNS server the
	// validator asks instead of the CA's own (DNS): a test's authoritative
	// server for dns-01. Pebble queries it over TCP and does not chase
	// CNAMEs itself, so the server must answer the whole chain as a
	// recursive resolver would. It must also answer A queries for
	// http-01 and tls-alpn-01 names.
	ResolverAddr string
	// Concurrent lets Pebble serve API requests concurrently, as its own
	// server does. By default certfleet's harness serves them one at a
	// time: Pebble v2.10.1's in-memory store deadlocks under concurrent
	// requests (a lock-order inversion: the authorization handler holds an
	// authz's lock while it asks the store's RWMutex, GetOrderByID holds
	// that RWMutex while it waits for the authz, and any writer queued
	// between them blocks every later request), which wedged tests with
	// 11 or more orders in flight. Each request takes well under a
	// millisecond and validation runs in the background, so serving them
	// in turn costs tests little. Benchmarks comparing throughput set it.
	Concurrent bool

	// apiAddr, when set, is the address the ACME API listens on instead
	// of a fresh loopback port (tests of this package only).
	apiAddr string
}

// CA is a running in-process Pebble. Its methods are safe for concurrent
// use.
type CA struct {
	dns      *DNS
	resolver string // the DNS server the validator asks
	api      *http.Server
	mgmt     *http.Server
	apiURL   string
	dirPath  string // the directory's path, unique to this CA (dirPrefix)
	mgmtURL  string
	pebble   *ca.CAImpl
	db       *db.MemoryStore
	tlsRoot  []byte // PEM of the self-signed certificate the API serves
	tlsPool  *x509.CertPool
	profiles map[string]string

	newOrders atomic.Int64
	finalized atomic.Int64
	posts     atomic.Int64
}

// Pebble's request paths (unexported constants in wfe/wfe.go, v2.10.1).
const (
	newOrderPath      = "/order-plz"
	orderFinalizePath = "/finalize-order/"
)

// Start starts a CA and its DNS server on loopback. ctx bounds start-up
// only: the CA runs until Close.
func Start(ctx context.Context, cfg Config) (*CA, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	httpPort, tlsPort := cfg.HTTPPort, cfg.TLSPort
	if httpPort == 0 {
		httpPort = 80
	}
	if tlsPort == 0 {
		tlsPort = 443
	}
	var logger *log.Logger
	if cfg.Logger != nil {
		logger = slog.NewLogLogger(cfg.Logger.With("component", "pebble").Handler(), slog.LevelDebug)
	} else {
		logger = log.New(discard{}, "", 0)
	}

	profiles := make(map[string]ca.Profile, len(cfg.Profiles))
	for name, p := range cfg.Profiles {
		profiles[name] = ca.Profile{Description: p.Description, ValidityPeriod: uint64(p.ValidityPeriod / time.Second)}
	}
	if len(profiles) == 0 {
		profiles[DefaultProfile] = ca.Profile{Description: "The default profile"}
	}

	d, err := startDNS()
	if err != nil {
		return nil, err
	}
	c := &CA{dns: d}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()

	c.db = db.NewMemoryStore()
	c.pebble = ca.New(logger, c.db, "", "ecdsa", 0, 1, profiles)
	resolver := d.Addr()
	if cfg.ResolverAddr != "" {
		resolver = cfg.ResolverAddr
	}
	c.resolver = resolver
	v := va.New(logger, httpPort, tlsPort, false, resolver, c.db)
	for keyID, key := range cfg.EABKeys {
		if err := c.db.AddExternalAccountKeyByID(keyID, key); err != nil {
			return nil, fmt.Errorf("pebble: add EAB key %q: %w", keyID, err)
		}
	}
	w := wfe.New(logger, c.db, v, c.pebble, []string{"pebble.letsencrypt.org"}, false,
		cfg.RequireEAB, cfg.RetryAfterAuthz, cfg.RetryAfterOrder)
	c.profiles = c.pebble.GetProfiles()

	cert, certPEM, err := selfSignedLoopback()
	if err != nil {
		return nil, err
	}
	c.tlsRoot = certPEM
	c.tlsPool = x509.NewCertPool()
	c.tlsPool.AppendCertsFromPEM(certPEM)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	api, mgmt := w.Handler(), w.ManagementHandler()
	if !cfg.Concurrent {
		var one sync.Mutex // shared: management requests use the store too
		api, mgmt = serialize(&one, api), serialize(&one, mgmt)
	}
	prefix, err := dirPrefix()
	if err != nil {
		return nil, err
	}
	c.dirPath = prefix + wfe.DirectoryPath
	apiAddr := cfg.apiAddr
	if apiAddr == "" {
		apiAddr = "127.0.0.1:0"
	}
	c.api, c.apiURL, err = serveTLS(apiAddr, stripPrefix(prefix, c.count(api)), tlsConf, logger)
	if err != nil {
		return nil, err
	}
	c.mgmt, c.mgmtURL, err = serveTLS("127.0.0.1:0", mgmt, tlsConf, logger)
	if err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// discard drops Pebble's log lines. Unlike io.Discard, a log.Logger
// writing to it still takes its output mutex on every line; Pebble v2.10.1
// relies on that by accident: it marks a replaced order in a goroutine
// without a lock its next newOrder check takes, and only the logger's mutex
// (both sides log) orders the two for the race detector.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// dirPrefix returns a path prefix of its own for a CA's directory URL.
//
// An ACME client process keeps the directories it fetched by URL: acmez
// for 12 hours, in a process-wide map (acme.Client.provisionDirectory),
// and certfleet's issuers for their lifetime. A CA closed in one test
// frees its loopback port, and the kernel may give that port to the CA
// the next test starts, with other profiles or EAB rules: under the same
// URL, its client would be served the first CA's directory ("the CA does
// not offer profile short"). The prefix keeps two CAs of one process from
// ever sharing a directory URL.
func dirPrefix() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pebble: directory path: %w", err)
	}
	return fmt.Sprintf("/ca-%x", b), nil
}

// stripPrefix serves h with prefix taken off the paths that have it: the
// directory lives under the prefix, and the URLs Pebble puts in it (built
// from its own fixed paths) have none.
func stripPrefix(prefix string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok && strings.HasPrefix(rest, "/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = rest, ""
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

func serveTLS(addr string, h http.Handler, conf *tls.Config, logger *log.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("pebble: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         conf,
		ErrorLog:          logger,
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(tls.NewListener(ln, conf)) //nolint:errcheck // ends with Close
	return srv, "https://" + ln.Addr().String(), nil
}

// serialize serves h's requests one at a time (see Config.Concurrent).
func serialize(mu *sync.Mutex, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// count wraps Pebble's handler to count successful new-order and finalize
// requests. Requests Pebble rejects (a bad nonce, say) are not counted.
func (c *CA) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		c.posts.Add(1)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		switch {
		case r.URL.Path == newOrderPath && sw.status == http.StatusCreated:
			c.newOrders.Add(1)
		case strings.HasPrefix(r.URL.Path, orderFinalizePath) && sw.status == http.StatusOK:
			c.finalized.Add(1)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// selfSignedLoopback makes the API's TLS certificate: self-signed, for
// 127.0.0.1, ::1 and localhost, valid for a year.
func selfSignedLoopback() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pebble: tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pebble: tls serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pebbleca loopback"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pebble: tls certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}

// DirectoryURL returns the ACME directory URL (RFC 8555 §7.1.1). Its path
// is unique to this CA (see dirPrefix); the other URLs of the API are
// Pebble's own, as the directory lists them.
func (c *CA) DirectoryURL() string { return c.apiURL + c.dirPath }

// APIURL returns the URL of path on the ACME API, as the URLs Pebble makes
// are ("/my-account/1"): for a test to name a resource the CA does not have.
func (c *CA) APIURL(path string) string { return c.apiURL + path }

// ManagementURL returns the base URL of Pebble's management API; the
// issuing root is at ManagementURL()+"/roots/0". It trusts TLSRootPEM too.
func (c *CA) ManagementURL() string { return c.mgmtURL }

// ResolverAddr returns the DNS server the CA's validator asks
// (Config.ResolverAddr, else its own DNS): a self-test that resolves
// through it sees names as the CA does.
func (c *CA) ResolverAddr() string { return c.resolver }

// DNS returns the CA's DNS server, to set TXT records for dns-01.
func (c *CA) DNS() *DNS { return c.dns }

// Profiles returns the profiles the CA offers, name → description.
func (c *CA) Profiles() map[string]string {
	out := make(map[string]string, len(c.profiles))
	for k, v := range c.profiles {
		out[k] = v
	}
	return out
}

// RootsPEM returns the CA's issuing root certificates, PEM: what verifies
// the chains it issues. They are made at Start and die with the CA.
func (c *CA) RootsPEM() []byte {
	var out []byte
	for i := range c.pebble.GetNumberOfRootCerts() {
		if r := c.pebble.GetRootCert(i); r != nil {
			out = append(out, r.PEM()...)
		}
	}
	return out
}

// Roots returns RootsPEM as a pool.
func (c *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(c.RootsPEM())
	return p
}

// TLSRootPEM returns the self-signed certificate the ACME and management
// APIs serve, PEM: what an ACME client must trust to talk to the CA.
func (c *CA) TLSRootPEM() []byte { return append([]byte(nil), c.tlsRoot...) }

// HTTPClient returns a new client that trusts the CA's API certificate.
func (c *CA) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: c.tlsPool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 64,
			ForceAttemptHTTP2:   true,
		},
	}
}

// NewOrders returns how many orders the CA has created (successful
// newOrder requests, RFC 8555 §7.4).
func (c *CA) NewOrders() int64 { return c.newOrders.Load() }

// Finalizations returns how many finalize requests the CA has accepted.
func (c *CA) Finalizations() int64 { return c.finalized.Load() }

// Posts returns how many POST requests reached the ACME API (every signed
// request, including those rejected for a bad nonce).
func (c *CA) Posts() int64 { return c.posts.Load() }

// SetRenewalInfo makes the CA suggest the renewal window [start, end) for
// cert (RFC 9773 §4.2), as a POST to the management API's
// /set-renewal-info/ would. The certificate must have been issued by this
// CA.
func (c *CA) SetRenewalInfo(ctx context.Context, cert *x509.Certificate, start, end time.Time) error {
	if cert == nil {
		return errors.New("pebble: set renewal info: no certificate")
	}
	var body struct {
		SuggestedWindow struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
	}
	body.SuggestedWindow.Start = start.UTC()
	body.SuggestedWindow.End = end.UTC()
	ari, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("pebble: set renewal info: %w", err)
	}
	req := struct {
		Certificate string
		ARIResponse string
	}{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})), string(ari)}
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("pebble: set renewal info: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.mgmtURL+"/set-renewal-info/", strings.NewReader(string(payload)))
	if err != nil {
		return fmt.Errorf("pebble: set renewal info: %w", err)
	}
	client := c.HTTPClient()
	defer client.CloseIdleConnections()
	resp, err := client.Do(hreq)
	if err != nil {
		return fmt.Errorf("pebble: set renewal info: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pebble: set renewal info: HTTP %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// Close stops the API servers and the DNS server. Pebble's validator keeps
// an idle goroutine until the process exits (it has no way to stop it).
func (c *CA) Close() error {
	var errs []error
	for _, s := range []*http.Server{c.api, c.mgmt} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if c.dns != nil {
		errs = append(errs, c.dns.close())
	}
	return errors.Join(errs...)
}
