package tlsalpn01

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/connlimit"
	"github.com/certfleet/certfleet/solver/answers"
)

// OIDACMEIdentifier is the id-pe-acmeIdentifier extension (RFC 8737 §6.1).
var OIDACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// Defaults for Responder.
const (
	// DefaultLookupTimeout bounds one store lookup; the CA waits about ten
	// seconds for the whole handshake.
	DefaultLookupTimeout = 5 * time.Second
	// DefaultHandshakeTimeout bounds one connection of Serve.
	DefaultHandshakeTimeout = 10 * time.Second
)

// Validation certificates are cached per (name, key authorization) for
// certCacheTTL, so a CA validating from several vantage points, or 1,000
// names at once, costs one signature per name. They are valid for a day
// around their creation (validity is not checked by CAs, but clock skew in a
// debugging client is harmless this way).
const (
	certCacheTTL  = 10 * time.Minute
	certCacheMax  = 10000
	certValidity  = 24 * time.Hour
	certBackdate  = time.Hour
	maxServerName = 253
)

// Responder answers tls-alpn-01 validation handshakes. It is safe for
// concurrent use; its exported fields must not change after first use.
type Responder struct {
	// Store holds the presented challenges (see Solver).
	Store certfleet.ChallengeStore
	// Answers, when set, is shared with this process's Solver (and fed by
	// an answers.Follower): it answers while the store is unreachable.
	Answers *answers.Cache
	// Fallback, when set, chooses the certificate for handshakes that do
	// not offer "acme-tls/1", so that a TLS server of ours can share the
	// port. Without it such handshakes fail. Serve still closes every
	// connection after its handshake: Fallback is for GetCertificate used
	// in another server's tls.Config.
	Fallback func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Logger receives a debug event per validation handshake. Nil discards.
	Logger *slog.Logger
	// LookupTimeout bounds one store lookup. Default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// HandshakeTimeout bounds one connection in Serve. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Limiter bounds the connections one client address may hold open in
	// Serve (connlimit.DefaultPerIP when nil); HandshakeTimeout bounds
	// each one's time.
	Limiter *connlimit.Limiter

	keyOnce sync.Once
	key     *ecdsa.PrivateKey // one key signs every validation certificate
	keyErr  error

	mu    sync.Mutex // guards certs
	certs map[certKey]cachedCert
}

type certKey struct{ name, keyAuth string }

type cachedCert struct {
	cert    *tls.Certificate
	expires time.Time
}

// TLSConfig returns a server configuration for a challenge-only listener:
// GetCertificate is r.GetCertificate and NextProtos is ["acme-tls/1"].
func (r *Responder) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{ALPNProto},
		MinVersion:     tls.VersionTLS12,
	}
}

// GetCertificate answers a ClientHello that offers "acme-tls/1" with the
// validation certificate for its server name (RFC 8737 §3: a self-signed
// certificate whose subjectAltName holds "a single dNSName entry where the
// value is the domain name being validated" — for an IP address a single
// iPAddress entry, RFC 8738 §6 — and whose critical acmeIdentifier extension
// holds "the SHA-256 digest of the key authorization"). It fails the
// handshake when no challenge is presented for the name. Other ClientHellos
// go to Fallback, or fail.
//
// To answer challenges on a TLS server of ours that shares the port, use
// this method as that server's tls.Config.GetCertificate, add ALPNProto to its
// NextProtos and close connections that negotiate it without reading from
// them (for net/http: TLSNextProto[ALPNProto] = a function that returns).
func (r *Responder) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !slices.Contains(hello.SupportedProtos, ALPNProto) {
		if r.Fallback != nil {
			return r.Fallback(hello)
		}
		return nil, fmt.Errorf("tls-alpn-01 responder: client did not offer %s", ALPNProto)
	}
	log := r.logger()
	ctx := hello.Context()
	if ctx == nil { // a ClientHelloInfo made outside a handshake
		ctx = context.Background()
	}
	remote := ""
	if hello.Conn != nil {
		remote = hello.Conn.RemoteAddr().String()
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if !validServerName(name) {
		log.DebugContext(ctx, "tls-alpn-01 handshake with missing or malformed server name",
			"remote_addr", remote)
		return nil, fmt.Errorf("tls-alpn-01 responder: missing or malformed server name")
	}
	if r.Store == nil && r.Answers == nil {
		return nil, fmt.Errorf("tls-alpn-01 responder has no store")
	}
	tok, source, err := r.lookup(ctx, name)
	if err != nil {
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			log.DebugContext(ctx, "tls-alpn-01 handshake for unknown name",
				"remote_addr", remote, "server_name", name)
		} else {
			log.WarnContext(ctx, "tls-alpn-01 challenge lookup",
				"remote_addr", remote, "server_name", name, certfleet.LogError, err)
		}
		return nil, fmt.Errorf("tls-alpn-01 responder: no challenge for %q", name)
	}
	cert, err := r.challengeCert(name, tok.KeyAuthorization)
	if err != nil {
		log.WarnContext(ctx, "tls-alpn-01 certificate", "server_name", name, certfleet.LogError, err)
		return nil, err
	}
	log.DebugContext(ctx, "tls-alpn-01 validation handshake answered",
		"remote_addr", remote, "server_name", name, "source", source)
	return cert, nil
}

// lookup finds the answer for name in the store; when the store fails, or
// failed within the last seconds, in Answers (presented here, or copied
// from the store before the failure: issue 16). The store comes first
// while it answers: one name has one answer at a time, and another
// instance may have replaced the one copied here. While the store fails
// and memory lacks it, both are tried again until LookupTimeout ends.
// source is "store", "memory", for the log.
func (r *Responder) lookup(ctx context.Context, name string) (certfleet.ChallengeToken, string, error) {
	now := r.now()
	if r.Answers != nil && (r.Store == nil || r.Answers.StoreDown(now)) {
		if t, ok := r.Answers.Get(name, now); ok {
			return t, "memory", nil
		}
	}
	if r.Store == nil {
		return certfleet.ChallengeToken{}, "", certfleet.Errorf(certfleet.ENOTFOUND, "no tls-alpn-01 challenge for %q", name)
	}
	timeout := r.LookupTimeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := retryMin
	for {
		tok, err := r.Store.Challenge(lctx, certfleet.ChallengeTLSALPN01, name)
		if err == nil || certfleet.ErrorCode(err) == certfleet.ENOTFOUND || r.Answers == nil {
			return tok, "store", err
		}
		r.Answers.StoreFailed(r.now())
		if t, ok := r.Answers.Get(name, r.now()); ok {
			return t, "memory", nil
		}
		// Not in memory either: look again, in both, until the budget
		// ends (issue 16: the answer's notification, or the list read
		// once the store is back, may bring it; a failed handshake
		// fails the authorization).
		select {
		case <-lctx.Done():
			return tok, "store", err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
}

// Steps of lookup's retries while the store fails, as in solver/http01.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 500 * time.Millisecond
)

// validServerName accepts lower-case host names (letters, digits, '-', '_',
// '.') that fit in DNS, before anything reaches the store.
func validServerName(name string) bool {
	if name == "" || len(name) > maxServerName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// challengeCert returns the cached validation certificate for (name,
// keyAuth), making one if needed.
func (r *Responder) challengeCert(name, keyAuth string) (*tls.Certificate, error) {
	now := r.now()
	k := certKey{name, keyAuth}
	r.mu.Lock()
	if c, ok := r.certs[k]; ok && now.Before(c.expires) {
		r.mu.Unlock()
		return c.cert, nil
	}
	r.mu.Unlock()

	cert, err := r.makeCert(name, keyAuth, now)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.certs == nil {
		r.certs = make(map[certKey]cachedCert)
	}
	if len(r.certs) >= certCacheMax {
		for k, c := range r.certs {
			if !now.Before(c.expires) {
				delete(r.certs, k)
			}
		}
		if len(r.certs) >= certCacheMax {
			clear(r.certs)
		}
	}
	r.certs[k] = cachedCert{cert: cert, expires: now.Add(certCacheTTL)}
	return cert, nil
}

func (r *Responder) makeCert(name, keyAuth string, now time.Time) (*tls.Certificate, error) {
	r.keyOnce.Do(func() {
		r.key, r.keyErr = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	if r.keyErr != nil {
		return nil, fmt.Errorf("generate tls-alpn-01 key: %w", r.keyErr)
	}
	sum := sha256.Sum256([]byte(keyAuth))
	// RFC 8737 §3: "The extension has the following ASN.1 [X.680] format:
	// Authorization ::= OCTET STRING (SIZE (32))".
	ext, err := asn1.Marshal(sum[:])
	if err != nil {
		return nil, fmt.Errorf("encode acmeIdentifier: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tls-alpn-01 serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "certfleet tls-alpn-01 challenge"},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		// RFC 8737 §3: "The acmeIdentifier extension MUST be critical so
		// that the certificate isn't inadvertently used by non-ACME
		// software."
		ExtraExtensions: []pkix.Extension{{Id: OIDACMEIdentifier, Critical: true, Value: ext}},
	}
	if addr, ok := addrFromReverse(name); ok {
		tmpl.IPAddresses = []net.IP{addr.AsSlice()}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &r.key.PublicKey, r.key)
	if err != nil {
		return nil, fmt.Errorf("create tls-alpn-01 certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse tls-alpn-01 certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: r.key, Leaf: leaf}, nil
}

// ListenAndServe listens on the TCP address addr (":443" for a CA to reach
// it) and calls Serve.
func (r *Responder) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err // net.OpError names the address
	}
	return r.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends, completes the TLS
// handshake of each and closes it: RFC 8737 §3 has the CA close the
// connection after the handshake ("the client MUST NOT exchange any further
// data with the server and MUST immediately close the connection"), so no
// application data is ever served. It closes ln, waits for open connections
// to finish, and returns nil after ctx ends, or the accept error.
func (r *Responder) Serve(ctx context.Context, ln net.Listener) error {
	cfg := r.TLSConfig()
	timeout := r.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	lim := r.Limiter
	if lim == nil {
		lim = &connlimit.Limiter{}
	}
	ln = lim.Listener(ln)
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Anything else (too many open files, a reset before
			// accept) is transient: back off as net/http does, up to
			// a second, and keep serving.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(tempDelay):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		tempDelay = 0
		wg.Go(func() {
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			tc := tls.Server(conn, cfg)
			// The error (unknown name, scanner) was logged by
			// GetCertificate where it matters; a handshake is all
			// there is to do either way.
			_ = tc.HandshakeContext(hctx)
			_ = tc.Close()
		})
	}
}

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Responder) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}
