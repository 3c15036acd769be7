package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/certfleet/certfleet"
)

// Choices of the CA and its certificates, with reasons.
const (
	// FirstCAID is the ID of the first CA: instances creating it at once
	// collide on it, and the store keeps exactly one.
	FirstCAID = "idca-1"
	// caValidity: the CA only signs certificates of a day or so; ten
	// years keeps it out of the way, and its key is sealed in the store.
	caValidity = 10 * 365 * 24 * time.Hour
	// clockSkew backdates certificates so a host whose clock is a little
	// behind accepts them at once; a client certificate by a tenth of its
	// lifetime at most, so that its half (when the agent renews) stays
	// close to half of the time it is actually used.
	clockSkew = 5 * time.Minute
)

// ca is a loaded CA: its certificate and signer.
type ca struct {
	id     string
	cert   *x509.Certificate
	signer crypto.Signer
	pem    []byte
}

// newCA makes a CA (ECDSA P-256, self-signed) as the store keeps it.
func newCA(now time.Time) (certfleet.IdentityCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certfleet.IdentityCA{}, fmt.Errorf("make identity CA key: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "certfleet identity CA " + hex.EncodeToString(rnd[:]), Organization: []string{"certfleet"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return certfleet.IdentityCA{}, fmt.Errorf("make identity CA certificate: %w", err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certfleet.IdentityCA{}, fmt.Errorf("encode identity CA key: %w", err)
	}
	return certfleet.IdentityCA{ID: FirstCAID, CreatedAt: now,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})}, nil
}

// loadCA parses a stored CA. Errors never quote the key.
func loadCA(rec certfleet.IdentityCA) (*ca, error) {
	cb, _ := pem.Decode(rec.CertPEM)
	if cb == nil {
		return nil, fmt.Errorf("identity CA %s: the stored certificate is not PEM", rec.ID)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity CA %s: %w", rec.ID, err)
	}
	kb, _ := pem.Decode(rec.KeyPEM)
	if kb == nil {
		return nil, fmt.Errorf("identity CA %s: the stored key is not PEM (is the store's master key the right one?)", rec.ID)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity CA %s: the stored key does not parse", rec.ID)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("identity CA %s: the stored key cannot sign", rec.ID)
	}
	return &ca{id: rec.ID, cert: cert, signer: signer, pem: rec.CertPEM}, nil
}

func randomSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[0] &= 0x7f // positive (RFC 5280 §4.1.2.2)
	if b[0] == 0 {
		b[0] = 1
	}
	return new(big.Int).SetBytes(b[:])
}

// ParseCSR reads a host's PEM CSR: a valid signature and a key certfleet
// accepts (ECDSA P-256 or P-384, RSA of 2048 bits or more, Ed25519). The
// CSR's subject and names are ignored: the identity's certificate says
// only who the identity is.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, certfleet.Errorf(certfleet.EINVALID, "the body is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, certfleet.Errorf(certfleet.EINVALID, "the CSR does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, certfleet.Errorf(certfleet.EINVALID, "the CSR's signature does not verify: %v", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, certfleet.Errorf(certfleet.EINVALID, "the CSR's ECDSA key is on %s; use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, certfleet.Errorf(certfleet.EINVALID, "the CSR's RSA key has %d bits; use 2048 or more", k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, certfleet.Errorf(certfleet.EINVALID, "the CSR's key type %T is not accepted; use ECDSA P-256", k)
	}
	return csr, nil
}

// sign issues an identity's client certificate for pub, valid from now for
// lifetime. Its subject common name is the identity's ID; it is good for
// TLS client authentication only.
func (c *ca) sign(id string, pub crypto.PublicKey, now time.Time, lifetime time.Duration) (*x509.Certificate, []byte, error) {
	notAfter := now.Add(lifetime)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: id, Organization: []string{"certfleet identity"}},
		NotBefore:    now.Add(-min(clockSkew, lifetime/10)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign identity certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// errNoCA is returned while no enrollment token was ever made.
var errNoCA = errors.New("no identity CA yet: make an enrollment token first (certfleet identity enroll-token)")
