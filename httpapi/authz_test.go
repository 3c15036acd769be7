package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
)

// TestAuthorizationMatrix sends every endpoint a request with each kind of
// credential and checks the status: no token, wrong token and revoked
// token 401; a token whose names do not cover the name 403 (and the same
// answer whether the name exists or not); a read-only token 403 for keys
// and writes; admin succeeds.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	e.issue("m.matrix.test", nil)
	if _, err := e.admin.PutName(ctx, "d.matrix.test", nil); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"c.matrix.test"}}, key)
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	revokedSecret := e.token(nil, false, certfleet.PermAdmin)
	toks, _ := e.store.Tokens(ctx)
	if err := e.store.RevokeToken(ctx, toks[len(toks)-1].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, wrongSecret, _ := certfleet.NewTokenSecret()
	all := []certfleet.Permission{certfleet.PermReadCerts, certfleet.PermReadKeys, certfleet.PermRequestNames}
	creds := []struct {
		name, secret string
	}{
		{"none", ""},
		{"wrong", wrongSecret},
		{"revoked", revokedSecret},
		{"url-credential", e.token(nil, true, certfleet.PermReadKeys)},
		{"out-of-scope", e.token([]string{"*.elsewhere.test", "matrix.test"}, false, all...)},
		{"read-only", e.token([]string{"*.matrix.test"}, false, certfleet.PermReadCerts)},
		{"admin", e.admin.Token},
	}
	const (
		scoped = 1 << iota // names a host: out-of-scope gets 403
		write              // needs request-names
		keys               // needs read-keys
		public
	)
	eps := []struct {
		method, path string
		body         []byte
		kind         int
		admin        int
	}{
		{"PUT", "/v1/names/m.matrix.test", nil, scoped | write, 200},
		{"GET", "/v1/names/m.matrix.test/cert", nil, scoped, 200},
		{"GET", "/v1/names/m.matrix.test/chain", nil, scoped, 200},
		{"GET", "/v1/names/m.matrix.test/fullchain", nil, scoped, 200},
		{"GET", "/v1/names/m.matrix.test/privkey", nil, scoped | keys, 200},
		{"GET", "/v1/names/m.matrix.test/bud", nil, scoped | keys, 200},
		{"GET", "/v1/names/m.matrix.test/status", nil, scoped, 200},
		{"POST", "/v1/names/m.matrix.test/retry", nil, scoped | write, 202},
		{"POST", "/v1/names/c.matrix.test/csr", csrPEM, scoped | write, 202},
		{"GET", "/v1/tls/get_certificate?server_name=m.matrix.test", nil, scoped | keys, 200},
		{"GET", "/v1/bud/ocsp/xyz", nil, 0, 404},
		{"POST", "/v1/bud/ocsp/xyz", []byte(`{"url": "http://ocsp.example/", "ocsp": "MAA="}`), 0, 404},
		{"GET", "/v1/certificates", nil, 0, 200},
		{"GET", "/v1/certificates/m.matrix.test", nil, 0, 200},
		{"GET", "/v1/openapi.json", nil, public, 200},
		// Agents report with read-certs (every agent has it); the name in
		// the body is scope-checked like a path's.
		{"POST", "/v1/agents/lb1/report", []byte(`{"name": "m.matrix.test", "serial": "01"}`), scoped, 204},
		{"DELETE", "/v1/names/d.matrix.test", nil, scoped | write, 204},
	}
	for _, ep := range eps {
		for _, c := range creds {
			want := ep.admin
			switch {
			case ep.kind&public != 0:
			case c.name == "none" || c.name == "wrong" || c.name == "revoked" || c.name == "url-credential":
				want = 401
			case c.name == "out-of-scope" && ep.kind&scoped != 0:
				want = 403
			case c.name == "out-of-scope" && ep.path == "/v1/certificates/m.matrix.test":
				want = 404 // not in scope reads as not found: no confirmation it exists
			case c.name == "read-only" && ep.kind&(write|keys) != 0:
				want = 403
			}
			h := http.Header{}
			if c.secret != "" {
				h.Set("Authorization", "Bearer "+c.secret)
			}
			if ep.body != nil {
				h.Set("Content-Type", "application/pkcs10")
				if ep.body[0] == '{' {
					h.Set("Content-Type", "application/json")
				}
			}
			resp, body := httpDo(t, ep.method, e.api.URL+ep.path, h, ep.body)
			if resp.StatusCode != want {
				t.Errorf("%s %s with %s token: %d, want %d: %s", ep.method, ep.path, c.name, resp.StatusCode, want, body)
				continue
			}
			if resp.StatusCode >= 400 && !strings.HasPrefix(ep.path, "/v1/bud/ocsp/") {
				assertProblem(t, resp, body, want)
			}
			if want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s token: 401 without WWW-Authenticate", ep.method, ep.path, c.name)
			}
		}
	}

	// Out of scope reveals nothing: an existing and a missing name get the
	// same answer, but for the path.
	tok := creds[4].secret
	_, b1 := httpGet(t, e.api.URL+"/v1/names/m.matrix.test/cert", http.Header{"Authorization": {"Bearer " + tok}})
	_, b2 := httpGet(t, e.api.URL+"/v1/names/nothing.matrix.test/cert", http.Header{"Authorization": {"Bearer " + tok}})
	if strings.ReplaceAll(string(b1), "m.matrix.test", "X") != strings.ReplaceAll(string(b2), "nothing.matrix.test", "X") {
		t.Errorf("403 bodies differ for an existing and a missing name:\n%s\n%s", b1, b2)
	}
	// An out-of-scope token's list holds nothing.
	_, body := httpGet(t, e.api.URL+"/v1/certificates", http.Header{"Authorization": {"Bearer " + tok}})
	var list httpapi.CertificateList
	if err := json.Unmarshal(body, &list); err != nil || len(list.Certificates) != 0 {
		t.Errorf("out-of-scope list = %s", body)
	}

	// On the URL listener: a bearer token's secret in the path is refused,
	// a URL credential works, and only for reads.
	urlSecret := creds[3].secret
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/u/" + e.admin.Token + "/v1/names/m.matrix.test/privkey", 401},
		{"/u/" + urlSecret + "/v1/names/m.matrix.test/privkey", 200},
		{"/u/" + urlSecret + "/v1/names/m.matrix.test/bud", 200},
		{"/u/" + urlSecret + "/v1/names/m.matrix.test/status", 404}, // not served there
		{"/u/" + revokedSecret + "/v1/names/m.matrix.test/cert", 401},
		{"/v1/names/m.matrix.test/cert", 404},
	} {
		resp, body := httpGet(t, e.urlAPI.URL+tc.path, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("URL listener %s: %d, want %d", strings.Replace(tc.path, urlSecret, "SECRET", 1), resp.StatusCode, tc.want)
		}
		if resp.StatusCode >= 400 {
			assertProblem(t, resp, body, tc.want)
			if strings.Contains(string(body), "cft_") {
				t.Errorf("a problem document on the URL listener echoes the secret: %s", body)
			}
		}
	}
	resp, _ := httpDo(t, "PUT", e.urlAPI.URL+"/u/"+urlSecret+"/v1/names/m.matrix.test", nil, nil)
	if resp.StatusCode == 200 || resp.StatusCode == 202 {
		t.Errorf("PUT through a URL credential succeeded")
	}
}

func assertProblem(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json: %s", resp.Request.URL.Path, ct, body)
		return
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("problem document: %v: %s", err, body)
		return
	}
	if p.Status != status || p.Type == "" || p.Title == "" || p.Code == "" || p.Detail == "" {
		t.Errorf("problem document %+v, want status %d and every member", p, status)
	}
}
