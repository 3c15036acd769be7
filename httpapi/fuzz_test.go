package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
)

// FuzzParseCSR: any input is either refused with an EINVALID error or
// gives names that are valid, normalised identifiers and a supported key
// type; never a panic.
func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"a.example.org", "b.example.org"}}, key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add(der)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, ids, kt, err := ParseCSR(data)
		if err != nil {
			if certfleet.ErrorCode(err) != certfleet.EINVALID {
				t.Fatalf("error code %q: %v", certfleet.ErrorCode(err), err)
			}
			return
		}
		if csr == nil || len(ids) == 0 || kt == "" {
			t.Fatalf("accepted with csr %v, ids %v, key type %q", csr != nil, ids, kt)
		}
		for _, id := range ids {
			again, err := certfleet.ParseIdentifier(id.Value)
			if err != nil || again != id {
				t.Fatalf("name %q is not a normalised identifier: %v", id.Value, err)
			}
		}
	})
}

// FuzzRequest sends arbitrary hostnames and bodies to the write endpoints
// of a real server on SQLite: every answer is a success or a problem
// document, and never a 500.
func FuzzRequest(f *testing.F) {
	srv, secret := newBareServer(f)
	h := srv.Handler()
	f.Add("a.example.org", "application/json", []byte(`{"key_types": ["rsa2048", "ecdsa-p256"]}`))
	f.Add("*.example.org", "application/json", []byte(`{"challenge": "dns-01"}`))
	f.Add("xn--bcher-kva.example", "", []byte(``))
	f.Add("127.0.0.1", "application/json", []byte(`{"account": "../x"}`))
	f.Add("a.example.org", "application/json", []byte(`{"csr": "-----BEGIN CERTIFICATE REQUEST-----"}`))
	f.Add("Bücher.example", "application/json", []byte(`null`))
	f.Fuzz(func(t *testing.T, host, ctype string, body []byte) {
		for _, m := range []struct{ method, suffix string }{{"PUT", ""}, {"POST", "/csr"}, {"GET", "/status"}, {"DELETE", ""}} {
			req := httptest.NewRequest(m.method, "/v1/names/x"+m.suffix, strings.NewReader(string(body)))
			req.URL.Path = "/v1/names/" + host + m.suffix
			req.URL.RawPath = "/v1/names/" + url.PathEscape(host) + m.suffix
			req.Header.Set("Authorization", "Bearer "+secret)
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %s", m.method, host, rec.Code, rec.Body)
			}
			if rec.Code >= 400 {
				var p Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code {
					t.Fatalf("%s %q: %d with a body that is no problem document: %s", m.method, host, rec.Code, rec.Body)
				}
			}
		}
	})
}

// FuzzMatchNamePattern: a pattern never covers a name outside its domain.
func FuzzMatchNamePattern(f *testing.F) {
	f.Add("*.example.org", "a.example.org")
	f.Add("*.example.org", "example.org")
	f.Add("example.org", "badexample.org")
	f.Add("*.example.org", "a.badexample.org")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if !certfleet.MatchNamePattern(pattern, name) || pattern == "*" {
			return
		}
		p, n := strings.ToLower(pattern), strings.ToLower(name)
		if base, ok := strings.CutPrefix(p, "*."); ok {
			if n != p && !strings.HasSuffix(n, "."+base) {
				t.Fatalf("%q covers %q", pattern, name)
			}
		} else if n != p {
			t.Fatalf("%q covers %q", pattern, name)
		}
	})
}
