package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/httpapi"
)

// IdentityDirName is the directory under the state directory that keeps
// the host identity (issue 17): key.pem (0600, made on this host, never
// sent), cert.pem (the client certificate) and ca.pem (the identity CA).
const IdentityDirName = "identity"

// identityRenewFraction: the agent renews its client certificate once half
// of its lifetime is over, so a server unreachable for up to half of it
// (12 h of the default day) costs no identity.
const identityRenewFraction = 0.5

// Identity is the host identity an agent authenticates with: its client
// certificate, kept in Dir, renewed in place (Renew). Safe for concurrent
// use: the HTTP client reads it at every handshake (GetClientCertificate)
// while KeepRenewed replaces it.
type Identity struct {
	Dir string

	mu   sync.RWMutex // guards cert, id
	cert *tls.Certificate
	id   string
}

// LoadIdentity reads the identity kept in dir; os.ErrNotExist (wrapped)
// when the host has not enrolled.
func LoadIdentity(dir string) (*Identity, error) {
	i := &Identity{Dir: dir}
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, fmt.Errorf("host identity in %s: %w", dir, err)
	}
	i.set(&c)
	return i, nil
}

func (i *Identity) set(c *tls.Certificate) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cert, i.id = c, c.Leaf.Subject.CommonName
}

// ID is the identity's ID (idn_…).
func (i *Identity) ID() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.id
}

// Leaf is the current client certificate.
func (i *Identity) Leaf() *x509.Certificate {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.cert.Leaf
}

// GetClientCertificate is a tls.Config.GetClientCertificate: the current
// certificate, at every handshake.
func (i *Identity) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.cert, nil
}

// RenewAt is when the certificate is due for renewal.
func (i *Identity) RenewAt() time.Time {
	l := i.Leaf()
	return l.NotBefore.Add(time.Duration(float64(l.NotAfter.Sub(l.NotBefore)) * identityRenewFraction))
}

// newIdentityKey makes a key and a CSR for it.
func newIdentityKey(name string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// store writes the identity's files atomically, key first (0600), in dir
// (made 0700), and returns the loaded certificate.
func storeIdentity(dir string, keyPEM []byte, iss httpapi.IdentityIssued) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair([]byte(iss.Certificate), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the server's certificate does not match the key made here: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host identity: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host identity: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"key.pem", keyPEM, 0o600}, {"cert.pem", []byte(iss.Certificate), 0o644}, {"ca.pem", []byte(iss.CA), 0o644}} {
		if _, err := deploy.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode, "", ""); err != nil {
			return nil, fmt.Errorf("host identity: %w", err)
		}
	}
	return &c, nil
}

// Enroll enrolls this host once with a one-time enrollment token: it makes
// the key here, sends a CSR (POST /v1/identities/enroll) through client
// (which needs no token), and keeps the identity in dir. An identity
// already in dir is refused: revoke it and remove dir to enroll again.
func Enroll(ctx context.Context, client *httpapi.Client, dir, enrollToken, name string) (*Identity, error) {
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err == nil {
		return nil, fmt.Errorf("this host is enrolled already (%s); to enroll again, revoke its identity (certfleet identity revoke) and remove %s", dir, dir)
	}
	keyPEM, csrPEM, err := newIdentityKey(name)
	if err != nil {
		return nil, fmt.Errorf("make the identity key: %w", err)
	}
	iss, err := client.EnrollIdentity(ctx, enrollToken, name, csrPEM)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	c, err := storeIdentity(dir, keyPEM, iss)
	if err != nil {
		return nil, err
	}
	i := &Identity{Dir: dir}
	i.set(c)
	return i, nil
}

// Renew replaces the certificate with one for a new key (POST
// /v1/identities/renew, authenticated by the current certificate); the
// new key and certificate are written before they are used.
func (i *Identity) Renew(ctx context.Context, client *httpapi.Client) error {
	keyPEM, csrPEM, err := newIdentityKey(i.ID())
	if err != nil {
		return fmt.Errorf("make the identity key: %w", err)
	}
	iss, err := client.RenewIdentity(ctx, csrPEM)
	if err != nil {
		return fmt.Errorf("renew the host identity: %w", err)
	}
	c, err := storeIdentity(i.Dir, keyPEM, iss)
	if err != nil {
		return err
	}
	i.set(c)
	return nil
}

// keepRenewed renews the identity at RenewAt until ctx ends, retrying
// failures with backoff (1 s doubling to maxBackoff) while it is valid.
func (i *Identity) keepRenewed(ctx context.Context, client *httpapi.Client, log *slog.Logger, maxBackoff time.Duration) {
	var backoff time.Duration
	for {
		wait := time.Until(i.RenewAt())
		if backoff > 0 {
			wait = backoff
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		err := i.Renew(ctx, client)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			backoff = 0
			log.Info("host identity renewed", "identity", i.ID(), "valid_until", i.Leaf().NotAfter)
			if client.HTTPClient != nil {
				client.HTTPClient.CloseIdleConnections() // new connections present the new certificate
			}
		case certfleet.ErrorCode(err) == certfleet.EUNAUTHORIZED || isUnauthorized(err):
			log.Error("the server refuses this host identity (revoked?); enroll again with a new token", "identity", i.ID(), certfleet.LogError, err)
			backoff = maxBackoff
		default:
			backoff = min(max(2*backoff, time.Second), maxBackoff)
			log.Warn("renew the host identity; retrying", "identity", i.ID(), "valid_until", i.Leaf().NotAfter,
				"retry_in", backoff, certfleet.LogError, err)
		}
	}
}

func isUnauthorized(err error) bool {
	var p *httpapi.Problem
	return errors.As(err, &p) && p.Status == 401
}
