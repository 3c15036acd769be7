package httpapi_test

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
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/identity"
)

// idServer is an httpapi.Server's handler served over TLS that asks for
// client certificates and checks them with an identity.Authority, as the
// daemon serves its TLS listener.
type idServer struct {
	t    *testing.T
	auth *identity.Authority
	ts   *httptest.Server
}

func newIDServer(t *testing.T, h http.Handler, auth *identity.Authority) *idServer {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	auth.ConfigureTLS(ts.TLS)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &idServer{t: t, auth: auth, ts: ts}
}

// client returns an API client that presents cert (nil: none) and no
// bearer token.
func (s *idServer) client(cert *tls.Certificate) *httpapi.Client {
	return &httpapi.Client{BaseURL: s.ts.URL, HTTPClient: s.httpClient(cert)}
}

func (s *idServer) httpClient(cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.ts.Certificate())
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
}

// enroll makes a key and CSR as a host does and enrolls with secret.
func (s *idServer) enroll(secret, name string) (tls.Certificate, httpapi.IdentityIssued, error) {
	key, csrPEM := newCSR(s.t)
	iss, err := s.client(nil).EnrollIdentity(s.t.Context(), secret, name, csrPEM)
	if err != nil {
		return tls.Certificate{}, iss, err
	}
	return mustKeyPair(s.t, iss.Certificate, key), iss, nil
}

func (s *idServer) mustEnroll(secret, name string) (tls.Certificate, httpapi.IdentityIssued) {
	s.t.Helper()
	c, iss, err := s.enroll(secret, name)
	if err != nil {
		s.t.Fatalf("enroll %s: %v", name, err)
	}
	return c, iss
}

func newCSR(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "host"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func mustKeyPair(t *testing.T, certPEM string, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	c, err := tls.X509KeyPair([]byte(certPEM), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	if err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	return c
}

func mustEnrollToken(t *testing.T, auth *identity.Authority, req identity.EnrollRequest) string {
	t.Helper()
	if req.Actor == "" {
		req.Actor = "cli:test"
	}
	_, secret, err := auth.CreateEnrollToken(t.Context(), req)
	if err != nil {
		t.Fatalf("enrollment token: %v", err)
	}
	return secret
}

func startAuthority(t *testing.T, auth *identity.Authority) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); auth.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func problemStatus(err error) int {
	var p *httpapi.Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// TestIdentityEnrollOnce: a host enrolls with a one-time token and reads
// over mTLS; the same token used again (stolen, replayed) is refused and
// yields no certificate; the audit trail shows the identity.
func TestIdentityEnrollOnce(t *testing.T) {
	e := newEnv(t, 0)
	auth := &identity.Authority{Store: e.store, Events: e.store}
	e.srv.Identities = auth
	startAuthority(t, auth)
	s := newIDServer(t, e.srv.Handler(), auth)
	ctx := t.Context()
	e.issue("a.enroll.test", nil)

	secret := mustEnrollToken(t, auth, identity.EnrollRequest{Names: []string{"a.enroll.test"}, Description: "web1"})
	cert, iss := s.mustEnroll(secret, "web1")
	if !strings.HasPrefix(iss.Identity, "idn_") || iss.CA == "" || len(iss.Names) != 1 || iss.NotAfter.IsZero() {
		t.Fatalf("enrollment answer %+v", iss)
	}
	if !strings.HasPrefix(cert.Leaf.Subject.CommonName, "idn_") || cert.Leaf.Subject.CommonName != iss.Identity {
		t.Errorf("certificate subject %q, want the identity %s", cert.Leaf.Subject, iss.Identity)
	}
	if got := cert.Leaf.NotAfter.Sub(time.Now()); got > identity.DefaultLifetime+time.Minute || got < identity.DefaultLifetime-time.Minute {
		t.Errorf("certificate valid for %s, want about %s", got, identity.DefaultLifetime)
	}
	key, err := s.client(&cert).Fetch(ctx, "a.enroll.test", "privkey", httpapi.FetchOptions{})
	if err != nil || !strings.Contains(string(key.Data), "PRIVATE KEY") {
		t.Fatalf("read key over mTLS: %v", err)
	}

	// The stolen token, used again: refused, nothing issued.
	_, _, err = s.enroll(secret, "thief")
	if problemStatus(err) != 401 {
		t.Fatalf("second enrollment with one token: %v, want 401", err)
	}
	ids, _ := e.store.Identities(ctx)
	if len(ids) != 1 || ids[0].Name != "web1" {
		t.Errorf("identities after a replayed token: %+v", ids)
	}
	// An expired token, garbage and a bearer token are refused too.
	expired := mustEnrollToken(t, &identity.Authority{Store: e.store, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }},
		identity.EnrollRequest{Names: []string{"a.enroll.test"}})
	for _, sec := range []string{expired, "cfe_garbage", e.admin.Token} {
		if _, _, err := s.enroll(sec, "x"); problemStatus(err) != 401 {
			t.Errorf("enroll with %.8s…: %v, want 401", sec, err)
		}
	}
	// A bad CSR is the caller's error, and does not use the token.
	fresh := mustEnrollToken(t, auth, identity.EnrollRequest{Names: []string{"a.enroll.test"}})
	if _, err := s.client(nil).EnrollIdentity(ctx, fresh, "web2", []byte("not a csr")); problemStatus(err) != 400 {
		t.Errorf("enroll with a bad CSR: %v, want 400", err)
	}
	if _, _, err := s.enroll(fresh, "web2"); err != nil {
		t.Errorf("the token of a refused CSR is used up: %v", err)
	}

	evs, err := e.store.Events(ctx, certfleet.EventFilter{Kind: certfleet.EventIdentity})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range evs {
		reasons = append(reasons, ev.Reason)
	}
	if !strings.Contains(strings.Join(reasons, ","), "enrolled") || !strings.Contains(strings.Join(reasons, ","), "enroll_token_created") {
		t.Errorf("identity events %v", reasons)
	}
	reads, _ := e.store.KeyReads(ctx, 1)
	if len(reads) != 1 || reads[0].TokenID != iss.Identity {
		t.Errorf("key read recorded as %+v, want identity %s", reads, iss.Identity)
	}
	kr, _ := e.store.Events(ctx, certfleet.EventFilter{Kind: certfleet.EventKeyRead})
	if len(kr) == 0 || kr[0].Actor != "identity:"+iss.Identity {
		t.Errorf("key-read audit actor %+v, want identity:%s", kr, iss.Identity)
	}
}

// TestIdentityRenew: an identity renews its certificate for a new key over
// mTLS; the new certificate works; a bearer token cannot renew.
func TestIdentityRenew(t *testing.T) {
	e := newEnv(t, 0)
	auth := &identity.Authority{Store: e.store, Events: e.store}
	e.srv.Identities = auth
	s := newIDServer(t, e.srv.Handler(), auth)
	ctx := t.Context()
	cert, iss := s.mustEnroll(mustEnrollToken(t, auth, identity.EnrollRequest{Names: []string{"*.renew.test"}}), "web1")
	key, csrPEM := newCSR(t)
	ren, err := s.client(&cert).RenewIdentity(ctx, csrPEM)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	next := mustKeyPair(t, ren.Certificate, key)
	if ren.Identity != iss.Identity || next.Leaf.SerialNumber.Cmp(cert.Leaf.SerialNumber) == 0 {
		t.Errorf("renewal %+v of %s", ren, iss.Identity)
	}
	if _, err := s.client(&next).Certificates(ctx, "", 10); err != nil {
		t.Errorf("list with the renewed certificate: %v", err)
	}
	got, _ := e.store.Identity(ctx, iss.Identity)
	if got.Serial != next.Leaf.SerialNumber.Text(16) {
		t.Errorf("stored serial %s, want the renewed %x", got.Serial, next.Leaf.SerialNumber)
	}
	c := &httpapi.Client{BaseURL: s.ts.URL, Token: e.admin.Token, HTTPClient: s.httpClient(nil)}
	if _, err := c.RenewIdentity(ctx, csrPEM); problemStatus(err) != 403 {
		t.Errorf("renew with a bearer token: %v, want 403", err)
	}
}

// TestIdentityRefused: an expired certificate, one of a foreign CA (even
// naming a real identity) and a revoked identity's are refused, at the
// handshake; a revoked identity's open connection is refused on its next
// request.
func TestIdentityRefused(t *testing.T) {
	e := newEnv(t, 0)
	auth := &identity.Authority{Store: e.store, Events: e.store, Refresh: 100 * time.Millisecond}
	e.srv.Identities = auth
	startAuthority(t, auth)
	s := newIDServer(t, e.srv.Handler(), auth)
	ctx := t.Context()

	good, iss := s.mustEnroll(mustEnrollToken(t, auth, identity.EnrollRequest{Names: []string{"*.refused.test"}}), "good")

	// Expired: issued by the same CA two days ago, for a day.
	past := &identity.Authority{Store: e.store, Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }}
	old := mustEnrollToken(t, auth, identity.EnrollRequest{Names: []string{"*.refused.test"}})
	expiredKey, csrPEM := newCSR(t)
	expIss, err := past.Enroll(ctx, old, "old", csrPEM, "test")
	if err != nil {
		t.Fatal(err)
	}
	expired := mustKeyPair(t, string(expIss.CertPEM), expiredKey)

	// Foreign: a CA of its own, naming the good identity.
	foreign := foreignCert(t, iss.Identity)

	for _, tc := range []struct {
		name string
		cert tls.Certificate
	}{{"expired", expired}, {"foreign", foreign}} {
		_, err := s.client(&tc.cert).Certificates(ctx, "", 10)
		if err == nil || problemStatus(err) != 0 {
			t.Errorf("%s client certificate: %v, want the handshake refused", tc.name, err)
		}
	}
	// Without a certificate and without a token: 401, not a handshake error.
	if _, err := s.client(nil).Certificates(ctx, "", 10); problemStatus(err) != 401 {
		t.Errorf("no credential: %v, want 401", err)
	}

	// A connection opened before the revocation is refused on its next
	// request; new handshakes are refused.
	c := s.client(&good)
	if _, err := c.Certificates(ctx, "", 10); err != nil {
		t.Fatalf("good identity: %v", err)
	}
	if _, err := auth.Revoke(ctx, iss.Identity, "cli:test", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Certificates(ctx, "", 10); problemStatus(err) != 401 {
		t.Errorf("revoked identity on its open connection: %v, want 401", err)
	}
	if _, err := s.client(&good).Certificates(ctx, "", 10); err == nil || problemStatus(err) != 0 {
		t.Errorf("revoked identity, new connection: %v, want the handshake refused", err)
	}
	evs, _ := e.store.Events(ctx, certfleet.EventFilter{Kind: certfleet.EventIdentity})
	if len(evs) == 0 || evs[0].Reason != "revoked" || !strings.Contains(evs[0].Detail, iss.Identity) {
		t.Errorf("newest identity event %+v, want the revocation", evs)
	}
}

// foreignCert is a client certificate from a CA certfleet does not know,
// with cn as its subject.
func foreignCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	c, _, _ := foreignCA(t, cn)
	return c
}

// foreignCA is foreignCert with the pool of its CA and a function that
// issues more of its certificates.
func foreignCA(t *testing.T, cn string) (tls.Certificate, *x509.CertPool, func(cn string) tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certfleet identity CA forged"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(cn string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		return mustKeyPair(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), key)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return issue(cn), pool, issue
}

// TestOperatorClientCA: a certificate of the operator's own client CA is
// accepted when its subject is mapped, with the mapping's scope, and
// refused at the handshake when it is not.
func TestOperatorClientCA(t *testing.T) {
	e := newEnv(t, 0)
	mapped, pool, issue := foreignCA(t, "ext-web1")
	auth := &identity.Authority{Store: e.store, ClientCAs: pool, Subjects: []identity.Subject{
		{Subject: "CN=ext-web1", Names: []string{"a.ext.test"}, Permissions: []certfleet.Permission{certfleet.PermReadKeys}}}}
	e.srv.Identities = auth
	s := newIDServer(t, e.srv.Handler(), auth)
	ctx := t.Context()
	e.issue("a.ext.test", nil)
	e.issue("b.ext.test", nil)
	c := s.client(&mapped)
	if _, err := c.Fetch(ctx, "a.ext.test", "privkey", httpapi.FetchOptions{}); err != nil {
		t.Errorf("mapped subject reads its key: %v", err)
	}
	if _, err := c.Fetch(ctx, "b.ext.test", "cert", httpapi.FetchOptions{}); problemStatus(err) != 403 {
		t.Errorf("mapped subject reads outside its names: %v, want 403", err)
	}
	reads, _ := e.store.KeyReads(ctx, 1)
	if len(reads) != 1 || reads[0].TokenID != "ext:CN=ext-web1" {
		t.Errorf("key read recorded as %+v", reads)
	}
	// Same CA, another subject: not mapped, refused.
	other := issue("ext-other")
	if _, err := s.client(&other).Certificates(ctx, "", 10); err == nil || problemStatus(err) != 0 {
		t.Errorf("unmapped subject: %v, want the handshake refused", err)
	}
}
