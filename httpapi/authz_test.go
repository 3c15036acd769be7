package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/identity"
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
		// Issued and not due: an authorized retry is told why nothing
		// is ordered (issue 15, finding 6).
		{"POST", "/v1/names/m.matrix.test/retry", nil, scoped | write, 409},
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

// TestAuthorizationMatrixIdentities is the matrix for host identities
// (issue 17): over mutual TLS, each identity gets exactly what a bearer
// token of the same scope gets, on every read path — an identity scoped to
// A reads A's key and not B's, a read-certs identity no key, a tenant's
// identity not the operator's certificate its pattern covers — and no
// identity writes or administers.
func TestAuthorizationMatrixIdentities(t *testing.T) {
	e := newEnv(t, 0)
	auth := &identity.Authority{Store: e.store, Events: e.store}
	e.srv.Identities = auth
	s := newIDServer(t, e.srv.Handler(), auth)
	ctx := t.Context()
	if _, err := e.admin.PutTenant(ctx, "t", httpapi.TenantRequest{Names: []string{"*.t.idm.test"}}); err != nil {
		t.Fatal(err)
	}
	tenantTok, err := e.admin.CreateTenantToken(ctx, "t", httpapi.TokenRequest{Permissions: []certfleet.Permission{certfleet.PermRequestNames, certfleet.PermReadKeys}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.idm.test", "b.idm.test", "o.t.idm.test"} {
		e.issue(n, nil)
	}
	tc := &httpapi.Client{BaseURL: e.api.URL, Token: tenantTok.Secret}
	if _, err := tc.PutName(ctx, "x.t.idm.test", nil); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := tc.WaitIssued(wctx, "x.t.idm.test"); err != nil {
		t.Fatal(err)
	}

	type cred struct {
		name   string
		names  []string
		tenant string
		perms  []certfleet.Permission
		// reads: the certificates it may read (the others: refused).
		reads map[string]bool
		keys  bool
	}
	rk := []certfleet.Permission{certfleet.PermReadKeys}
	creds := []cred{
		{"scoped-to-a", []string{"a.idm.test"}, "", rk, map[string]bool{"a.idm.test": true}, true},
		{"read-certs", []string{"*.idm.test"}, "", []certfleet.Permission{certfleet.PermReadCerts},
			map[string]bool{"a.idm.test": true, "b.idm.test": true, "o.t.idm.test": true, "x.t.idm.test": true}, false},
		{"tenant-t", []string{"*.t.idm.test"}, "t", rk, map[string]bool{"x.t.idm.test": true}, true},
		{"operator-t", []string{"*.t.idm.test"}, "", rk, map[string]bool{"o.t.idm.test": true, "x.t.idm.test": true}, true},
	}
	names := []string{"a.idm.test", "b.idm.test", "o.t.idm.test", "x.t.idm.test"}
	var firstHTTP *http.Client
	for _, c := range creds {
		cert, _ := s.mustEnroll(mustEnrollToken(t, auth, identity.EnrollRequest{Names: c.names, Tenant: c.tenant, Permissions: c.perms}), c.name)
		idHTTP := s.httpClient(&cert)
		if firstHTTP == nil {
			firstHTTP = idHTTP
		}
		// The bearer token of the same scope, on the same TLS listener.
		id, secret, hash := certfleet.NewTokenSecret()
		if err := e.store.CreateToken(ctx, certfleet.Token{ID: id, Names: c.names, Permissions: c.perms, Tenant: c.tenant, Hash: hash}); err != nil {
			t.Fatal(err)
		}
		tokHTTP := s.httpClient(nil)
		for _, n := range names {
			type ep struct {
				method, path string
				body         string
				keys         bool
				want, deny   int
			}
			eps := []ep{
				{"GET", "/v1/names/" + n + "/cert", "", false, 200, 403},
				{"GET", "/v1/names/" + n + "/fullchain", "", false, 200, 403},
				{"GET", "/v1/names/" + n + "/status", "", false, 200, 403},
				{"GET", "/v1/names/" + n + "/privkey", "", true, 200, 403},
				{"GET", "/v1/names/" + n + "/bud", "", true, 200, 403},
				{"GET", "/v1/tls/get_certificate?server_name=" + n, "", true, 200, 403},
				{"GET", "/v1/certificates/" + n, "", false, 200, 404},
				{"POST", "/v1/agents/" + c.name + "/report", `{"name": "` + n + `", "serial": "01"}`, false, 204, 403},
				{"PUT", "/v1/names/" + n, "", false, 403, 403},
				{"POST", "/v1/names/" + n + "/retry", "", false, 403, 403},
			}
			for _, p := range eps {
				want := p.deny
				if c.reads[n] {
					want = p.want
					if p.keys && !c.keys {
						want = 403
					}
				}
				var body []byte
				h := http.Header{}
				if p.body != "" {
					body = []byte(p.body)
					h.Set("Content-Type", "application/json")
				}
				resp, got := doWith(t, idHTTP, p.method, s.ts.URL+p.path, h, body)
				if resp.StatusCode != want {
					t.Errorf("identity %s: %s %s: %d, want %d: %s", c.name, p.method, p.path, resp.StatusCode, want, got)
				}
				h.Set("Authorization", "Bearer "+secret)
				tresp, tgot := doWith(t, tokHTTP, p.method, s.ts.URL+p.path, h, body)
				if tresp.StatusCode != resp.StatusCode {
					t.Errorf("%s %s: identity %s got %d, the token of the same scope %d: %s", p.method, p.path, c.name, resp.StatusCode, tresp.StatusCode, tgot)
				}
			}
		}
		for _, path := range []string{"/v1/audit", "/v1/tenants", "/v1/accounts"} {
			if resp, body := doWith(t, idHTTP, "GET", s.ts.URL+path, nil, nil); resp.StatusCode != 403 {
				t.Errorf("identity %s: GET %s: %d, want 403: %s", c.name, path, resp.StatusCode, body)
			}
		}
		// The list holds exactly what it may read.
		resp, body := doWith(t, idHTTP, "GET", s.ts.URL+"/v1/certificates", nil, nil)
		var list httpapi.CertificateList
		if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("identity %s list: %d %s", c.name, resp.StatusCode, body)
		}
		if len(list.Certificates) != len(c.reads) {
			t.Errorf("identity %s lists %d certificates, want %d: %s", c.name, len(list.Certificates), len(c.reads), body)
		}
	}

	// The fleet view names the identity an agent reported with.
	if resp, body := doWith(t, firstHTTP, "POST", s.ts.URL+"/v1/agents/scoped-to-a/report", http.Header{"Content-Type": {"application/json"}},
		[]byte(`{"name": "a.idm.test", "serial": "02"}`)); resp.StatusCode != 204 {
		t.Fatalf("report: %d %s", resp.StatusCode, body)
	}
	st, _, _, err := e.admin.Status(ctx, "a.idm.test", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, f := range st.Fleet {
		if f.Agent == "scoped-to-a" {
			seen = strings.HasPrefix(f.Identity, "idn_")
		}
	}
	if !seen {
		t.Errorf("fleet of a.idm.test %+v: no entry of agent scoped-to-a with its identity", st.Fleet)
	}
}

// TestRequireClientCertForKeys: with the switch on, a bearer token no
// longer reads keys on the main handler (it still reads certificates), an
// identity does, and URL credentials (Bud, Caddy) keep working.
func TestRequireClientCertForKeys(t *testing.T) {
	e := newEnv(t, 0)
	auth := &identity.Authority{Store: e.store}
	srv := &httpapi.Server{Store: e.store, Identities: auth, RequireClientCertForKeys: true}
	s := newIDServer(t, srv.Handler(), auth)
	urlAPI := httptest.NewServer(srv.URLHandler())
	t.Cleanup(urlAPI.Close)
	e.issue("k.req.test", nil)
	cert, _ := s.mustEnroll(mustEnrollToken(t, auth, identity.EnrollRequest{Names: []string{"k.req.test"}}), "web1")
	h := http.Header{"Authorization": {"Bearer " + e.admin.Token}}
	for _, tc := range []struct {
		what   string
		client *http.Client
		h      http.Header
		url    string
		want   int
	}{
		{"admin token, key", s.httpClient(nil), h, s.ts.URL + "/v1/names/k.req.test/privkey", 403},
		{"admin token, get_certificate", s.httpClient(nil), h, s.ts.URL + "/v1/tls/get_certificate?server_name=k.req.test", 403},
		{"admin token, certificate", s.httpClient(nil), h, s.ts.URL + "/v1/names/k.req.test/cert", 200},
		{"identity, key", s.httpClient(&cert), nil, s.ts.URL + "/v1/names/k.req.test/privkey", 200},
		{"URL credential, key", http.DefaultClient, nil, urlAPI.URL + "/u/" + e.token(nil, true, certfleet.PermReadKeys) + "/v1/names/k.req.test/privkey", 200},
	} {
		resp, body := doWith(t, tc.client, "GET", tc.url, tc.h, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d: %s", tc.what, resp.StatusCode, tc.want, body)
		}
	}
}

func doWith(t *testing.T, c *http.Client, method, url string, h http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
