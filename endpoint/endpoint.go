// Package endpoint checks which certificate a TLS endpoint actually serves,
// and compares it with the newest one certfleet issued.
//
// Checker.Check connects to a Target (host:port and SNI name), negotiates
// TLS — directly, or after the plaintext upgrade of SMTP (STARTTLS, RFC 3207),
// IMAP (STARTTLS, RFC 3501 §6.2.1), POP3 (STLS, RFC 2595 §4) or PostgreSQL
// (SSLRequest) — and returns the served certificate in a Result. It does not
// trust the chain to decide what the server serves: it accepts any
// certificate, compares fingerprints, and reports separately whether the
// chain verifies against the roots given. Compare turns a Result and the
// archive into a Verdict: ok, stale, expiring, expired or mismatch.
//
// Every read from the server is bounded in length and time, so a hostile or
// broken server can neither hang a check nor exhaust memory.
//
// It deliberately does not schedule checks, store results or decide what an
// endpoint list looks like in the configuration: the daemon package does
// that. It sends no credentials and never logs in.
package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// Protocol says how TLS is reached on an endpoint.
type Protocol string

// Protocols.
const (
	// TLS: the handshake starts as soon as the connection is open (HTTPS,
	// SMTPS, IMAPS, POP3S, LDAPS …).
	ProtocolTLS Protocol = "tls"
	// SMTP: STARTTLS after EHLO (RFC 3207), e.g. port 25 or 587.
	ProtocolSMTP Protocol = "smtp"
	// IMAP: "a1 STARTTLS" after the greeting (RFC 3501 §6.2.1), port 143.
	ProtocolIMAP Protocol = "imap"
	// POP3: STLS after the greeting (RFC 2595 §4), port 110.
	ProtocolPOP3 Protocol = "pop3"
	// PostgreSQL: the SSLRequest message, answered 'S' (PostgreSQL
	// frontend/backend protocol, "SSL Session Encryption"), port 5432.
	ProtocolPostgres Protocol = "postgres"
)

// Protocols lists every protocol, in the order documented.
var Protocols = []Protocol{ProtocolTLS, ProtocolSMTP, ProtocolIMAP, ProtocolPOP3, ProtocolPostgres}

// ParseProtocol parses a protocol name (case-insensitive); "" is ProtocolTLS.
func ParseProtocol(s string) (Protocol, error) {
	p := Protocol(strings.ToLower(strings.TrimSpace(s)))
	if p == "" {
		return ProtocolTLS, nil
	}
	for _, q := range Protocols {
		if p == q {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown endpoint protocol %q (use one of tls, smtp, imap, pop3, postgres)", s)
}

// DefaultPort returns the port a protocol's endpoint usually listens on: 443,
// 25, 143, 110 or 5432; 0 for an unknown protocol.
func (p Protocol) DefaultPort() int {
	switch p {
	case ProtocolTLS, "":
		return 443
	case ProtocolSMTP:
		return 25
	case ProtocolIMAP:
		return 143
	case ProtocolPOP3:
		return 110
	case ProtocolPostgres:
		return 5432
	}
	return 0
}

// Target is one endpoint to check.
type Target struct {
	// Address is host:port. A host without a port gets the protocol's
	// DefaultPort. IPv6 addresses with a port are bracketed ("[::1]:443").
	Address string
	// ServerName is the name sent in SNI and checked against the
	// certificate when the chain is verified. Default: the host of Address
	// when it is a name, none when it is an IP address.
	ServerName string
	// Protocol is how TLS is reached; "" means ProtocolTLS.
	Protocol Protocol
	// ALPN lists the application protocols to offer (e.g. "h2"), none by
	// default. Some servers choose the certificate by ALPN.
	ALPN []string
	// KeyFamily, when "rsa" or "ecdsa" (certfleet.KeyType.Family), asks for
	// the certificate of that key family from a server holding both (a dual
	// certificate): the check then offers only TLS 1.2 cipher suites that
	// authenticate with that key, since TLS 1.3 gives a client no portable
	// way to choose. "" offers everything and reads what the server prefers.
	KeyFamily string
	// Timeout bounds the whole check (connect, plaintext exchange and
	// handshake). Zero means Checker.Timeout.
	Timeout time.Duration
}

// Normalize returns the target with its defaults filled in (protocol, port,
// server name) or an error saying what is wrong with it.
func (t Target) Normalize() (Target, error) {
	p, err := ParseProtocol(string(t.Protocol))
	if err != nil {
		return t, fmt.Errorf("endpoint %q: %w", t.Address, err)
	}
	t.Protocol = p
	addr := strings.TrimSpace(t.Address)
	if addr == "" {
		return t, fmt.Errorf("endpoint: no address (give host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a bare name, IPv4 or IPv6 address (bracketed or not).
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if strings.ContainsAny(host, "[]/ ") {
			return t, fmt.Errorf("endpoint %q: not host:port", t.Address)
		}
		port = fmt.Sprint(p.DefaultPort())
	}
	if host == "" {
		return t, fmt.Errorf("endpoint %q: no host", t.Address)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "0" {
		return t, fmt.Errorf("endpoint %q: bad port %q", t.Address, port)
	}
	t.Address = net.JoinHostPort(host, port)
	if t.ServerName == "" {
		if _, err := netip.ParseAddr(host); err != nil {
			t.ServerName = strings.ToLower(strings.TrimSuffix(host, "."))
		}
	}
	switch t.KeyFamily {
	case "", "rsa", "ecdsa":
	default:
		return t, fmt.Errorf("endpoint %q: unknown key family %q (use rsa or ecdsa)", t.Address, t.KeyFamily)
	}
	if t.Timeout < 0 {
		return t, fmt.Errorf("endpoint %q: negative timeout", t.Address)
	}
	return t, nil
}

// String describes the target for logs and errors:
// "smtp mx.example.org:25 (SNI mx.example.org)".
func (t Target) String() string {
	p := t.Protocol
	if p == "" {
		p = ProtocolTLS
	}
	s := string(p) + " " + t.Address
	if t.ServerName != "" {
		s += " (SNI " + t.ServerName + ")"
	}
	if t.KeyFamily != "" {
		s += " [" + t.KeyFamily + "]"
	}
	return s
}

// verifyName is the name the leaf must be valid for: the SNI name, else the
// host of the address (an IP address).
func (t Target) verifyName() string {
	if t.ServerName != "" {
		return t.ServerName
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return t.Address
	}
	return host
}

// Result is what one check saw.
type Result struct {
	// Target is the target checked, normalised.
	Target Target
	// Leaf is the end-entity certificate the server sent.
	Leaf *x509.Certificate
	// Chain is every certificate the server sent, leaf first.
	Chain []*x509.Certificate
	// Fingerprint is the hex SHA-256 of Leaf's DER (certfleet.Fingerprint),
	// comparable with certfleet.Issuance.Fingerprint.
	Fingerprint string
	// Serial is Leaf's serial number in lower-case hex, as in
	// certfleet.Issuance.Serial.
	Serial string
	// NotAfter is Leaf's expiry.
	NotAfter time.Time
	// ChainVerified reports whether the served chain verifies against
	// Checker.Roots for the target's name at CheckedAt. VerifyError says
	// why not when it is false.
	ChainVerified bool
	VerifyError   string
	// TLSVersion is the negotiated version (tls.VersionTLS13 …) and ALPN
	// the negotiated application protocol ("" for none).
	TLSVersion uint16
	ALPN       string
	// CheckedAt is when the check ran (Checker.Now) and Duration how long
	// it took, from dialling to the end of the handshake.
	CheckedAt time.Time
	Duration  time.Duration
}

// LogValue summarises the result for logs.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", r.Target.String()),
		slog.String(certfleet.LogSerial, certfleet.FormatSerial(r.Serial)),
		slog.Time(certfleet.LogNotAfter, r.NotAfter),
		slog.Bool("chain_verified", r.ChainVerified),
		slog.Duration("duration", r.Duration),
	)
}

// ContextDialer dials connections; *net.Dialer is one.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// DefaultTimeout bounds a check when neither the Target nor the Checker sets
// a timeout. Ten seconds is generous for a handshake yet short enough that a
// blackholed endpoint does not hold a check loop for long.
const DefaultTimeout = 10 * time.Second

// Checker checks endpoints. Its zero value is ready to use; it is safe for
// concurrent use and holds no state between checks.
type Checker struct {
	// Dialer opens the TCP connection. Default: a *net.Dialer.
	Dialer ContextDialer
	// Timeout bounds each check unless its Target sets one. Default:
	// DefaultTimeout.
	Timeout time.Duration
	// Roots verify the served chain (Result.ChainVerified). Default: the
	// system roots. They never decide whether a check succeeds.
	Roots *x509.CertPool
	// HelloName is the domain sent in SMTP's EHLO (RFC 5321 §4.1.1.1).
	// Default: "localhost".
	HelloName string
	// Now is the clock for Result.CheckedAt and chain verification.
	// Default: time.Now.
	Now func() time.Time
	// Logger receives a debug event per check; nil discards.
	Logger *slog.Logger
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Check connects to the target, negotiates TLS the way its protocol says,
// and returns the certificate served. It does not verify the chain to accept
// it (the point is to see what is served, trusted or not); Result.ChainVerified
// reports verification separately.
//
// The whole check is bounded by the target's (or the checker's) timeout and
// by ctx. A failure is an *Error naming the target, the step that failed
// (connect, greeting, capabilities, starttls, handshake), the server's reply
// when it refused, and what to check.
func (c *Checker) Check(ctx context.Context, target Target) (Result, error) {
	t, err := target.Normalize()
	if err != nil {
		return Result{Target: target}, err
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = c.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	res := Result{Target: t, CheckedAt: c.now()}
	start := time.Now()
	dialer := c.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	conn, err := dialer.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		return res, newError(t, StepConnect, "", timeoutErr(ctx, timeout, err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancellation unblocks any read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := c.upgrade(ctx, conn, t); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Err = timeoutErr(ctx, timeout, e.Err)
			return res, e
		}
		return res, err
	}

	conf := &tls.Config{
		ServerName: t.ServerName,
		NextProtos: t.ALPN,
		// We compare what is served with what we issued; trust is reported
		// separately (ChainVerified), so an untrusted or expired chain is
		// still read, not refused.
		InsecureSkipVerify: true,
	}
	if suites := familySuites[t.KeyFamily]; suites != nil {
		conf.MaxVersion = tls.VersionTLS12
		conf.CipherSuites = suites
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return res, newError(t, StepHandshake, "", timeoutErr(ctx, timeout, err))
	}
	state := tc.ConnectionState()
	res.Duration = time.Since(start)
	if len(state.PeerCertificates) == 0 {
		return res, newError(t, StepHandshake, "", errors.New("the server sent no certificate"))
	}
	c.goodbye(tc, t)

	res.Chain = state.PeerCertificates
	res.Leaf = state.PeerCertificates[0]
	res.Fingerprint = certfleet.Fingerprint(res.Leaf)
	res.Serial = res.Leaf.SerialNumber.Text(16)
	res.NotAfter = res.Leaf.NotAfter
	res.TLSVersion = state.Version
	res.ALPN = state.NegotiatedProtocol
	if err := verifyChain(res.Chain, c.Roots, t.verifyName(), res.CheckedAt); err != nil {
		res.VerifyError = err.Error()
	} else {
		res.ChainVerified = true
	}
	if c.Logger != nil {
		c.Logger.Debug("endpoint checked", "result", res)
	}
	return res, nil
}

// familySuites are the TLS 1.2 ECDHE suites authenticated by each key
// family (RFC 8422 §6 for ECDSA, RFC 5289 and RFC 7905 for both): offering
// only one family's suites makes a server with a dual certificate present
// that family's certificate.
var familySuites = map[string][]uint16{
	"rsa": {
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	},
	"ecdsa": {
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	},
}

// verifyChain verifies the served chain for name at now.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, name string, now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       name,
		CurrentTime:   now,
	})
	return err
}

// goodbye ends the session politely where the protocol has a way to (so the
// server logs a clean QUIT rather than a dropped connection). Best effort:
// the reply is not read and errors are ignored.
func (c *Checker) goodbye(tc *tls.Conn, t Target) {
	var line string
	switch t.Protocol {
	case ProtocolSMTP, ProtocolPOP3:
		line = "QUIT\r\n"
	case ProtocolIMAP:
		line = "a2 LOGOUT\r\n"
	default:
		return
	}
	tc.SetWriteDeadline(time.Now().Add(time.Second))
	tc.Write([]byte(line))
}

// timeoutErr rewrites a deadline error into one that says which limit was
// hit, and a cancellation into one that says so.
func timeoutErr(ctx context.Context, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("canceled: %w", err)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		var te *timeoutError
		if errors.As(err, &te) {
			return err
		}
		return &timeoutError{after: timeout, err: err}
	}
	return err
}

// timeoutError is a check that ran out of time.
type timeoutError struct {
	after time.Duration
	err   error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no answer within the %s timeout (%v)", e.after, e.err)
}
func (e *timeoutError) Unwrap() error { return e.err }
func (e *timeoutError) Timeout() bool { return true }
