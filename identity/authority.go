// Package identity is certfleet's host identities (issue 17): a small CA for
// client certificates whose key is sealed in the store like every private
// key, one-time enrollment tokens, the enrollment and renewal of a host's
// certificate from its CSR, and the check of a client certificate on every
// TLS handshake and API request. An Authority turns a verified client
// certificate into the principal the API authorises (a certfleet.Token value
// with the identity's ID and scope), refusing revoked identities at once: it
// keeps the identities in memory and reloads them when the store notifies a
// change (PostgreSQL LISTEN/NOTIFY, so on every instance) and every Refresh.
// Operators may also trust their own client CA and map certificate subjects
// to scopes (Subjects).
//
// It does not serve HTTP (httpapi does, and asks the Authority through its
// Identities interface), does not run on hosts (the agent enrolls and renews
// with httpapi.Client), and does not keep anything itself (the store does,
// certfleet.IdentityStore). It issues client certificates only, never a
// server certificate, and publishes no CRL: revocation is certfleet's own
// check, effective on every instance sharing the store.
package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// Defaults of Authority's zero fields, with reasons.
const (
	// DefaultLifetime of an identity's certificate: a day, so a stolen
	// certificate (with its key) is useful for hours, not months; the
	// agent renews at half of it, so a server down for up to half a day
	// costs no host its identity.
	DefaultLifetime = 24 * time.Hour
	// DefaultRefresh is how often the identities are re-read without a
	// notification: the store of one instance (SQLite) has none, and a
	// `certfleet identity revoke` run there takes effect within it (a
	// second at most, with the reload's own time).
	DefaultRefresh = 500 * time.Millisecond
	// NotifiedRefresh is the fallback re-read when the store notifies
	// (PostgreSQL): notifications are best effort (lost while the store
	// reconnects).
	NotifiedRefresh = 30 * time.Second
	// minReload spaces reloads prompted by notifications, which also come
	// for every job change: a burst of renewals costs one re-read.
	minReload = 100 * time.Millisecond
	// caReload spaces the re-reads of the CAs that a certificate no
	// known CA verifies prompts: one query of a row or two.
	caReload = 100 * time.Millisecond
)

// Subject maps a client certificate of the operator's own CA to a scope:
// a certificate whose subject is Subject (as Go's pkix.Name.String writes
// it, e.g. "CN=web1.example.org,O=Example") gets Names and Permissions
// within Tenant.
type Subject struct {
	Subject     string
	Names       []string
	Permissions []certfleet.Permission
	Tenant      string
}

// Authority issues and checks identities. Set the fields, then call Run
// (or Load) before serving. Safe for concurrent use; fields must not change
// after the first call.
type Authority struct {
	// Store is required.
	Store certfleet.IdentityStore
	// Events receives the audit events of enrollments, renewals and
	// revocations; nil records none.
	Events certfleet.EventSink
	// Lifetime of an identity's certificate; default DefaultLifetime.
	Lifetime time.Duration
	// Refresh: see DefaultRefresh and NotifiedRefresh.
	Refresh time.Duration
	// ClientCAs, when set, are the operator's own CAs for client
	// certificates; such a certificate is accepted only if its subject
	// is one of Subjects.
	ClientCAs *x509.CertPool
	Subjects  []Subject
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger

	once sync.Once
	caMu sync.Mutex   // serialises reloadCAsAfter
	mu   sync.RWMutex // guards cas, pool, ids, loaded
	cas  []*ca
	pool *x509.CertPool
	ids  map[string]certfleet.Identity
	// loaded is when the CAs were last read.
	loaded time.Time
}

func (a *Authority) init() {
	a.once.Do(func() {
		if a.Lifetime <= 0 {
			a.Lifetime = DefaultLifetime
		}
		if a.Now == nil {
			a.Now = time.Now
		}
		if a.Logger == nil {
			a.Logger = slog.New(slog.DiscardHandler)
		}
		a.ids = make(map[string]certfleet.Identity)
		// Never nil: x509 verifies against the system's roots when Roots
		// is nil, and no public CA may vouch for a host identity.
		a.pool = x509.NewCertPool()
	})
}

// Load reads the CAs and every identity into memory.
func (a *Authority) Load(ctx context.Context) error {
	if err := a.loadCAs(ctx); err != nil {
		return err
	}
	ids, err := a.Store.Identities(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]certfleet.Identity, len(ids))
	for _, i := range ids {
		m[i.ID] = i
	}
	a.mu.Lock()
	a.ids = m
	a.mu.Unlock()
	return nil
}

// loadCAs reads the CAs (a row or two) into memory.
func (a *Authority) loadCAs(ctx context.Context) error {
	a.init()
	recs, err := a.Store.IdentityCAs(ctx)
	if err != nil {
		return err
	}
	var cas []*ca
	pool := x509.NewCertPool()
	for _, r := range recs {
		c, err := loadCA(r)
		if err != nil {
			return err
		}
		cas = append(cas, c)
		pool.AddCert(c.cert)
	}
	a.mu.Lock()
	a.cas, a.pool, a.loaded = cas, pool, a.Now()
	a.mu.Unlock()
	return nil
}

// Run keeps the identities in memory fresh until ctx ends: it loads them,
// then reloads whenever the store notifies a change and every Refresh.
// Failures are logged; the last good copy stays in force.
func (a *Authority) Run(ctx context.Context) {
	a.init()
	var changes <-chan struct{}
	interval := a.Refresh
	if n, ok := a.Store.(certfleet.Notifier); ok {
		changes = n.Changes(ctx)
		if interval <= 0 {
			interval = NotifiedRefresh
		}
	}
	if interval <= 0 {
		interval = DefaultRefresh
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := a.Load(ctx); err != nil && ctx.Err() == nil {
			a.Logger.Warn("reload host identities; the last copy stays in force", certfleet.LogError, err)
		}
		select { // a burst of notifications costs one more reload
		case <-ctx.Done():
			return
		case <-time.After(minReload):
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
		case <-t.C:
		}
	}
}

// Enroll creates an identity from a one-time enrollment token's secret and
// the host's CSR (its key stays on the host), and issues its first
// certificate. An unknown, expired or used token is EUNAUTHORIZED, the same
// for all three; the certificate is only returned once the store has used
// the token, so a token used twice yields one certificate.
func (a *Authority) Enroll(ctx context.Context, secret, name string, csrPEM []byte, remote string) (certfleet.IdentityCertificate, error) {
	a.init()
	if !strings.HasPrefix(secret, certfleet.EnrollTokenPrefix) {
		return certfleet.IdentityCertificate{}, certfleet.Errorf(certfleet.EUNAUTHORIZED, "send an enrollment token (cfe_…), made with certfleet identity enroll-token")
	}
	if name == "" {
		name = "host"
	}
	if err := certfleet.ValidateAgentName(name); err != nil {
		return certfleet.IdentityCertificate{}, certfleet.Errorf(certfleet.EINVALID, "name: %v", err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	c, err := a.signingCA(ctx)
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	now := a.Now()
	id := certfleet.NewIdentityID()
	cert, certPEM, err := c.sign(id, csr.PublicKey, now, a.Lifetime)
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	ident, err := a.Store.Enroll(ctx, certfleet.HashTokenSecret(secret),
		certfleet.Identity{ID: id, Name: name, Serial: serialHex(cert), NotAfter: cert.NotAfter, CreatedAt: now})
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	a.remember(ident)
	a.event(ctx, certfleet.Event{Kind: certfleet.EventIdentity, Reason: "enrolled", Actor: certfleet.ActorOf(id), Remote: remote,
		Serial: ident.Serial, Detail: ident.AuditDetail() + "; enrollment token " + ident.EnrollToken})
	a.Logger.Info("host identity enrolled", "identity", id, "name", name, "remote", remote)
	return certfleet.IdentityCertificate{Identity: ident, CertPEM: certPEM, CAPEM: c.pem}, nil
}

// Renew issues a new certificate to the identity id (authenticated by its
// current one) for the key of csrPEM. A revoked or unknown identity is
// EUNAUTHORIZED; an operator's-CA principal cannot renew here.
func (a *Authority) Renew(ctx context.Context, id string, csrPEM []byte, remote string) (certfleet.IdentityCertificate, error) {
	a.init()
	if !strings.HasPrefix(id, certfleet.IdentityIDPrefix) {
		return certfleet.IdentityCertificate{}, certfleet.Errorf(certfleet.EUNAUTHORIZED, "only a certfleet host identity renews here; authenticate with its client certificate")
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	ident, err := a.Store.Identity(ctx, id)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND || (err == nil && ident.Revoked()) {
		return certfleet.IdentityCertificate{}, certfleet.Errorf(certfleet.EUNAUTHORIZED, "identity %s is revoked or unknown; enroll again with a new enrollment token", id)
	} else if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	c, err := a.signingCA(ctx)
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	now := a.Now()
	cert, certPEM, err := c.sign(id, csr.PublicKey, now, a.Lifetime)
	if err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	if err := a.Store.RenewIdentity(ctx, id, serialHex(cert), cert.NotAfter, now); err != nil {
		return certfleet.IdentityCertificate{}, err
	}
	ident.Serial, ident.NotAfter, ident.RenewedAt = serialHex(cert), cert.NotAfter, now
	a.remember(ident)
	a.event(ctx, certfleet.Event{Kind: certfleet.EventIdentity, Reason: "renewed", Actor: certfleet.ActorOf(id), Remote: remote,
		Serial: ident.Serial, Detail: fmt.Sprintf("%s renewed, valid until %s", id, cert.NotAfter.UTC().Format(time.RFC3339))})
	return certfleet.IdentityCertificate{Identity: ident, CertPEM: certPEM, CAPEM: c.pem}, nil
}

// signingCA returns the CA that signs, creating it if there is none yet.
func (a *Authority) signingCA(ctx context.Context) (*ca, error) {
	a.mu.RLock()
	var c *ca
	if len(a.cas) > 0 {
		c = a.cas[0]
	}
	a.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	if err := a.EnsureCA(ctx); err != nil {
		return nil, err
	}
	if err := a.Load(ctx); err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.cas) == 0 {
		return nil, errNoCA
	}
	return a.cas[0], nil
}

// EnsureCA creates the identity CA unless the store has one.
func (a *Authority) EnsureCA(ctx context.Context) error {
	a.init()
	cas, err := a.Store.IdentityCAs(ctx)
	if err != nil {
		return err
	}
	if len(cas) > 0 {
		return nil
	}
	rec, err := newCA(a.Now())
	if err != nil {
		return err
	}
	_, err = a.Store.CreateIdentityCA(ctx, rec)
	return err
}

// CAPEM returns the identity CA's certificate, for operators and agents
// (nil while there is none).
func (a *Authority) CAPEM() []byte {
	a.init()
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.cas) == 0 {
		return nil
	}
	return a.cas[0].pem
}

func (a *Authority) remember(i certfleet.Identity) {
	a.mu.Lock()
	a.ids[i.ID] = i
	a.mu.Unlock()
}

func (a *Authority) event(ctx context.Context, e certfleet.Event) {
	if a.Events == nil {
		return
	}
	if e.At.IsZero() {
		e.At = a.Now()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.Events.RecordEvent(ctx, e); err != nil {
		a.Logger.Error("record identity audit event", "event", e, certfleet.LogError, err)
	}
}

func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

// refused is the error of a refused client certificate: EUNAUTHORIZED,
// saying why without echoing anything secret.
func refused(format string, args ...any) error {
	return certfleet.Errorf(certfleet.EUNAUTHORIZED, "client certificate refused: "+format, args...)
}

// Authenticate checks the client certificate chain a TLS peer presented
// (leaf first) and returns the principal it stands for. The chain must
// verify for client authentication at this moment against the identity
// CA, whose leaf names an identity that is not revoked, or against the
// operator's ClientCAs with a subject in Subjects. Every refusal is
// EUNAUTHORIZED and says why, without echoing anything secret.
func (a *Authority) Authenticate(ctx context.Context, chain []*x509.Certificate) (certfleet.Token, error) {
	a.init()
	if len(chain) == 0 {
		return certfleet.Token{}, refused("none presented")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	now := a.Now()
	if now.After(leaf.NotAfter) {
		return certfleet.Token{}, refused("it expired at %s; renew it (the agent does so at half its lifetime) or enroll again",
			leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	opts := x509.VerifyOptions{Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	a.mu.RLock()
	opts.Roots = a.pool
	a.mu.RUnlock()
	_, err := leaf.Verify(opts)
	if err != nil {
		// Perhaps a CA made since the last read (by another instance
		// or the CLI): read the CAs again once this failure is seen,
		// at most every caReload whatever clients send.
		if err := a.reloadCAsAfter(ctx, now); err != nil {
			return certfleet.Token{}, fmt.Errorf("load host identities: %w", err)
		}
		a.mu.RLock()
		opts.Roots = a.pool
		a.mu.RUnlock()
		_, err = leaf.Verify(opts)
	}
	if err == nil {
		return a.principal(ctx, leaf.Subject.CommonName)
	}
	if a.ClientCAs != nil {
		opts.Roots = a.ClientCAs
		if _, err := leaf.Verify(opts); err == nil {
			subj := leaf.Subject.String()
			for _, s := range a.Subjects {
				if s.Subject == subj {
					return certfleet.Token{ID: certfleet.ExternalIDPrefix + subj, Description: "client certificate " + subj,
						Names: s.Names, Permissions: s.Permissions, Tenant: s.Tenant}, nil
				}
			}
			return certfleet.Token{}, refused("subject %q of the operator's client CA is mapped to no scope ([[identities.subject]])", subj)
		}
	}
	return certfleet.Token{}, refused("it is not issued by certfleet's identity CA or a trusted client CA")
}

// reloadCAsAfter makes sure the CAs were read after seen: it reads them
// unless someone did meanwhile, waiting for caReload since the last read
// (concurrent callers wait in line and mostly find the work done).
func (a *Authority) reloadCAsAfter(ctx context.Context, seen time.Time) error {
	a.caMu.Lock()
	defer a.caMu.Unlock()
	a.mu.RLock()
	last := a.loaded
	a.mu.RUnlock()
	if last.After(seen) {
		return nil
	}
	if wait := caReload - a.Now().Sub(last); wait > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return a.loadCAs(ctx)
}

// principal returns the scope of identity id, from memory, or from the
// store for an identity enrolled on another instance since the last load.
func (a *Authority) principal(ctx context.Context, id string) (certfleet.Token, error) {
	if !strings.HasPrefix(id, certfleet.IdentityIDPrefix) {
		return certfleet.Token{}, refused("it names no identity")
	}
	a.mu.RLock()
	i, ok := a.ids[id]
	a.mu.RUnlock()
	if !ok {
		var err error
		i, err = a.Store.Identity(ctx, id)
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			return certfleet.Token{}, refused("identity %s is unknown", id)
		} else if err != nil {
			return certfleet.Token{}, fmt.Errorf("look up identity %s: %w", id, err)
		}
		a.remember(i)
	}
	if i.Revoked() {
		return certfleet.Token{}, refused("identity %s was revoked at %s", id, i.RevokedAt.UTC().Format(time.RFC3339))
	}
	return i.Principal(), nil
}

// VerifyConnection is a tls.Config.VerifyConnection: a handshake whose
// client presents a certificate that Authenticate refuses fails there, so
// an expired, foreign or revoked certificate gets no HTTP at all. A client
// without a certificate passes (bearer tokens, URL credentials).
func (a *Authority) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Authenticate(ctx, cs.PeerCertificates)
	return err
}

// ConfigureTLS makes a server's tls.Config ask clients for a certificate
// (without requiring one) and check it with VerifyConnection.
func (a *Authority) ConfigureTLS(tc *tls.Config) {
	tc.ClientAuth = tls.RequestClientCert
	tc.VerifyConnection = a.VerifyConnection
}
