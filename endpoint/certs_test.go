package endpoint_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// testCA is a root and an intermediate that issue test leaves, like a real
// ACME CA's chain.
type testCA struct {
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
	roots    *x509.CertPool
	nextID   atomic.Int64
}

func mustKey(t testing.TB, rsaKey bool) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	if rsaKey {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	now := time.Now()
	rootKey := mustKey(t, false)
	rootTmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{CommonName: name + " root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	root := mustSign(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	interKey := mustKey(t, false)
	inter := mustSign(t, &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{CommonName: name + " intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, root, interKey.Public(), rootKey)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &testCA{root: root, inter: inter, interKey: interKey, roots: pool}
}

// leaf is an issued test certificate: what a server serves and what the
// archive holds.
type leaf struct {
	cert *x509.Certificate
	tls  tls.Certificate // leaf + intermediate, with the key
	iss  certfleet.Issuance
}

// leafOnly returns the leaf without its intermediate (a server configured
// with cert.pem instead of fullchain.pem).
func (l leaf) leafOnly() tls.Certificate {
	c := l.tls
	c.Certificate = c.Certificate[:1]
	return c
}

// issue makes a leaf for names valid from notBefore to notAfter.
func (ca *testCA) issue(t testing.TB, names []string, notBefore, notAfter time.Time, rsaKey bool) leaf {
	t.Helper()
	key := mustKey(t, rsaKey)
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	var ids []certfleet.Identifier
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
		id, err := certfleet.ParseIdentifier(n)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c := mustSign(t, tmpl, ca.inter, key.Public(), ca.interKey)
	kt := certfleet.KeyType("ecdsa-p256")
	if rsaKey {
		kt = "rsa2048"
	}
	chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.inter.Raw})...)
	return leaf{
		cert: c,
		tls:  tls.Certificate{Certificate: [][]byte{c.Raw, ca.inter.Raw}, PrivateKey: key, Leaf: c},
		iss: certfleet.Issuance{
			ID: ca.nextID.Add(1), Spec: "web", KeyType: kt, Identifiers: ids,
			Serial: c.SerialNumber.Text(16), Fingerprint: certfleet.Fingerprint(c),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, ChainPEM: chainPEM, IssuedAt: notBefore,
		},
	}
}
