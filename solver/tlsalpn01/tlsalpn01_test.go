package tlsalpn01_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/solvertest"
	"github.com/certfleet/certfleet/solver/tlsalpn01"
)

const testKeyAuth = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"

func testChallenge(id certfleet.Identifier, keyAuth string) certfleet.Challenge {
	return certfleet.Challenge{
		Type:             certfleet.ChallengeTLSALPN01,
		Identifier:       id,
		Token:            "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
		KeyAuthorization: keyAuth,
	}
}

func mustIdentifier(t *testing.T, s string) certfleet.Identifier {
	t.Helper()
	id, err := certfleet.ParseIdentifier(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newTestResponder serves r on a loopback port until the test ends and
// returns its address.
func newTestResponder(t *testing.T, r *tlsalpn01.Responder) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// validate dials addr as a CA does (Pebble's va: SNI, ALPN acme-tls/1, no
// chain verification) and returns the leaf certificate, or the handshake
// error.
func validate(t *testing.T, addr, serverName string) (*x509.Certificate, error) {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{
		ServerName:         serverName,
		NextProtos:         []string{tlsalpn01.ALPNProto},
		InsecureSkipVerify: true,
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cs := c.(*tls.Conn).ConnectionState()
	if cs.NegotiatedProtocol != tlsalpn01.ALPNProto {
		t.Errorf("negotiated protocol %q, want %q", cs.NegotiatedProtocol, tlsalpn01.ALPNProto)
	}
	if len(cs.PeerCertificates) != 1 {
		t.Fatalf("got %d certificates, want 1", len(cs.PeerCertificates))
	}
	return cs.PeerCertificates[0], nil
}

// checkACMEIdentifier verifies the RFC 8737 §3 extension: critical, an
// OCTET STRING holding SHA-256(keyAuth).
func checkACMEIdentifier(t *testing.T, leaf *x509.Certificate, keyAuth string) {
	t.Helper()
	want := sha256.Sum256([]byte(keyAuth))
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(tlsalpn01.OIDACMEIdentifier) {
			continue
		}
		if !ext.Critical {
			t.Error("acmeIdentifier extension is not critical")
		}
		var got []byte
		if rest, err := asn1.Unmarshal(ext.Value, &got); err != nil || len(rest) != 0 {
			t.Fatalf("acmeIdentifier: malformed OCTET STRING (%v)", err)
		}
		if !bytes.Equal(got, want[:]) {
			t.Errorf("acmeIdentifier = %x, want %x", got, want)
		}
		return
	}
	t.Fatal("no acmeIdentifier extension")
}

func TestValidationHandshake(t *testing.T) {
	for _, tc := range []struct {
		name       string
		identifier string
		sni        string // what the CA sends
		wantIP     string // "" for a DNS SAN
	}{
		{name: "dns", identifier: "Example.ORG", sni: "example.org"},
		{name: "dns trailing dot and case", identifier: "www.example.org", sni: "WWW.example.org."},
		{name: "ipv4", identifier: "127.0.0.1", sni: "1.0.0.127.in-addr.arpa.", wantIP: "127.0.0.1"},
		{name: "ipv6", identifier: "2001:db8::1",
			sni:    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
			wantIP: "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := solvertest.NewMemStore()
			addr := newTestResponder(t, &tlsalpn01.Responder{Store: store})
			solver := &tlsalpn01.Solver{Store: store}
			chal := testChallenge(mustIdentifier(t, tc.identifier), testKeyAuth)

			if _, err := validate(t, addr, tc.sni); err == nil {
				t.Fatal("handshake before Present succeeded, want failure")
			}
			if err := solver.Present(t.Context(), chal); err != nil {
				t.Fatalf("Present: %v", err)
			}
			leaf, err := validate(t, addr, tc.sni)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			checkACMEIdentifier(t, leaf, testKeyAuth)
			if tc.wantIP == "" {
				if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != chal.Identifier.Value || len(leaf.IPAddresses) != 0 {
					t.Errorf("SAN: DNS %v IP %v, want exactly DNS [%s]", leaf.DNSNames, leaf.IPAddresses, chal.Identifier.Value)
				}
			} else {
				want := netip.MustParseAddr(tc.wantIP)
				if len(leaf.IPAddresses) != 1 || len(leaf.DNSNames) != 0 {
					t.Fatalf("SAN: DNS %v IP %v, want exactly IP [%s]", leaf.DNSNames, leaf.IPAddresses, want)
				}
				if got, _ := netip.AddrFromSlice(leaf.IPAddresses[0]); got.Unmap() != want {
					t.Errorf("SAN IP %s, want %s", got, want)
				}
			}
			// Self-signed, as RFC 8737 §3 requires.
			if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil || !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
				t.Errorf("certificate is not self-signed: %v", err)
			}

			if err := solver.CleanUp(t.Context(), chal); err != nil {
				t.Fatalf("CleanUp: %v", err)
			}
			if _, err := validate(t, addr, tc.sni); err == nil {
				t.Fatal("handshake after CleanUp succeeded, want failure")
			}
			if err := solver.CleanUp(t.Context(), chal); err != nil {
				t.Fatalf("second CleanUp: %v", err)
			}
		})
	}
}

func TestNewKeyAuthorizationNewCertificate(t *testing.T) {
	// A cached certificate must never answer for a replaced challenge.
	store := solvertest.NewMemStore()
	addr := newTestResponder(t, &tlsalpn01.Responder{Store: store})
	solver := &tlsalpn01.Solver{Store: store}
	id := mustIdentifier(t, "example.org")
	for _, ka := range []string{testKeyAuth, "other.keyauth", testKeyAuth} {
		if err := solver.Present(t.Context(), testChallenge(id, ka)); err != nil {
			t.Fatal(err)
		}
		leaf, err := validate(t, addr, "example.org")
		if err != nil {
			t.Fatal(err)
		}
		checkACMEIdentifier(t, leaf, ka)
	}
}

func TestTokenFromAnotherInstance(t *testing.T) {
	store := solvertest.NewMemStore()
	addr := newTestResponder(t, &tlsalpn01.Responder{Store: store})
	err := store.PutChallenge(t.Context(), certfleet.ChallengeToken{
		Type: certfleet.ChallengeTLSALPN01, Key: "example.org", KeyAuthorization: testKeyAuth,
		Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := validate(t, addr, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	checkACMEIdentifier(t, leaf, testKeyAuth)
}

func TestHandshakeFailures(t *testing.T) {
	store := solvertest.NewMemStore()
	addr := newTestResponder(t, &tlsalpn01.Responder{Store: store})
	if err := (&tlsalpn01.Solver{Store: store}).Present(t.Context(), testChallenge(mustIdentifier(t, "example.org"), testKeyAuth)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sni    string
		protos []string
	}{
		{name: "unknown name", sni: "other.example.org", protos: []string{tlsalpn01.ALPNProto}},
		{name: "no SNI", sni: "", protos: []string{tlsalpn01.ALPNProto}},
		{name: "no acme-tls/1", sni: "example.org", protos: []string{"h2", "http/1.1"}},
		{name: "no ALPN", sni: "example.org", protos: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &tls.Dialer{Config: &tls.Config{ServerName: tc.sni, NextProtos: tc.protos, InsecureSkipVerify: true}}
			c, err := d.DialContext(t.Context(), "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded, want failure")
			}
		})
	}
	if n := store.Lookups(); n != 1 {
		// Only "unknown name" is a well-formed acme-tls/1 hello.
		t.Errorf("store lookups %d, want 1", n)
	}
}

func TestFallbackSharesPort(t *testing.T) {
	store := solvertest.NewMemStore()
	appCert := mustSelfSigned(t, "app.example.org")
	r := &tlsalpn01.Responder{
		Store:    store,
		Fallback: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return appCert, nil },
	}
	if err := (&tlsalpn01.Solver{Store: store}).Present(t.Context(), testChallenge(mustIdentifier(t, "example.org"), testKeyAuth)); err != nil {
		t.Fatal(err)
	}
	// An application server of ours using GetCertificate, as documented.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1", tlsalpn01.ALPNProto},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	addr := ln.Addr().String()

	leaf, err := validate(t, addr, "example.org")
	if err != nil {
		t.Fatalf("validation handshake: %v", err)
	}
	checkACMEIdentifier(t, leaf, testKeyAuth)

	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "app.example.org", NextProtos: []string{"http/1.1"}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("application handshake: %v", err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "app.example.org" {
		t.Errorf("application handshake got certificate %q, want the fallback app.example.org", got)
	}
}

func mustSelfSigned(t *testing.T, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestServerName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		code     string
	}{
		{in: "example.org", want: "example.org"},
		{in: "192.0.2.1", want: "1.2.0.192.in-addr.arpa"},
		{in: "::ffff:192.0.2.1", want: "1.2.0.192.in-addr.arpa"},
		{in: "2001:db8::567:89ab", want: "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
		{in: "*.example.org", code: certfleet.EINVALID},
	} {
		id := mustIdentifier(t, tc.in)
		got, err := tlsalpn01.ServerName(id)
		if gotCode := certfleet.ErrorCode(err); got != tc.want || gotCode != tc.code {
			t.Errorf("ServerName(%q) = %q, %v; want %q, code %q", tc.in, got, err, tc.want, tc.code)
		}
	}
}

func TestPresentRejects(t *testing.T) {
	store := solvertest.NewMemStore()
	s := &tlsalpn01.Solver{Store: store}
	wrongType := testChallenge(mustIdentifier(t, "example.org"), testKeyAuth)
	wrongType.Type = certfleet.ChallengeHTTP01
	for name, chal := range map[string]certfleet.Challenge{
		"wildcard":   testChallenge(mustIdentifier(t, "*.example.org"), testKeyAuth),
		"wrong type": wrongType,
		"no keyauth": testChallenge(mustIdentifier(t, "example.org"), ""),
	} {
		if err := s.Present(t.Context(), chal); certfleet.ErrorCode(err) != certfleet.EINVALID {
			t.Errorf("%s: Present = %v, want EINVALID", name, err)
		}
	}
	if store.Len() != 0 {
		t.Errorf("store holds %d challenges, want 0", store.Len())
	}
}
