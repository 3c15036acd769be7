package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
)

// TestEndToEnd requests a name over the API, long-polls until the real
// manager has it issued by Pebble, then fetches every document and checks
// that they match and verify against the CA's roots.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "www.e2e.test"

	// Long-poll the fullchain before it exists: it must answer when the
	// certificate is issued, not after the whole wait.
	type fetched struct {
		p   httpapi.PEM
		err error
		at  time.Time
	}
	early := make(chan fetched, 1)
	go func() {
		p, err := e.admin.Fetch(ctx, name, "fullchain", httpapi.FetchOptions{Wait: 50 * time.Second})
		early <- fetched{p, err, time.Now()}
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	st, err := e.admin.PutName(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Issued || st.Certificate != name || st.StatusURL != "/v1/names/www.e2e.test/status" {
		t.Fatalf("PUT status = %+v, want not issued yet, certificate %q", st, name)
	}
	f := <-early
	if f.err != nil {
		t.Fatalf("long-polled fullchain: %v", f.err)
	}
	if took := f.at.Sub(start); took > 20*time.Second {
		t.Fatalf("long-poll answered after %s: it did not wake on issuance", took)
	}

	st, err = e.admin.WaitIssued(ctx, name)
	if err != nil || !st.Issued || len(st.Keys) != 1 || st.Keys[0].Serial == "" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// PUT again: idempotent, now 200 with the same certificate.
	st2, err := e.admin.PutName(ctx, name, nil)
	if err != nil || !st2.Issued || st2.Keys[0].Serial != st.Keys[0].Serial {
		t.Fatalf("second PUT = %+v, %v", st2, err)
	}

	get := func(part string) httpapi.PEM {
		t.Helper()
		p, err := e.admin.Fetch(ctx, name, part, httpapi.FetchOptions{})
		if err != nil {
			t.Fatalf("GET %s: %v", part, err)
		}
		return p
	}
	cert, chain, full, key := get("cert"), get("chain"), get("fullchain"), get("privkey")
	if !bytes.Equal(full.Data, f.p.Data) {
		t.Error("long-polled fullchain differs from the fullchain fetched later")
	}
	if !bytes.Equal(append(bytes.Clone(cert.Data), chain.Data...), full.Data) {
		t.Error("cert + chain != fullchain")
	}
	if bytes.Contains(chain.Data, cert.Data) {
		t.Error("chain contains the end-entity certificate")
	}
	leaf := e.verify(full.Data, name)
	if certfleet.SerialString(leaf.SerialNumber) != st.Keys[0].Serial { // as openssl prints it (issue 15)
		t.Errorf("serial %s, status says %s", certfleet.SerialString(leaf.SerialNumber), st.Keys[0].Serial)
	}
	if _, err := tls.X509KeyPair(full.Data, key.Data); err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}

	// ETag: a conditional GET costs a 304; a long-poll on an unchanged
	// document waits, then answers 304.
	p, err := e.admin.Fetch(ctx, name, "fullchain", httpapi.FetchOptions{ETag: full.ETag})
	if err != nil || !p.NotModified {
		t.Fatalf("conditional GET = %+v, %v; want 304", p, err)
	}
	t0 := time.Now()
	p, err = e.admin.Fetch(ctx, name, "fullchain", httpapi.FetchOptions{ETag: full.ETag, Wait: 700 * time.Millisecond})
	if err != nil || !p.NotModified || time.Since(t0) < 600*time.Millisecond {
		t.Fatalf("long-poll on unchanged = %+v, %v after %s; want 304 after the wait", p, err, time.Since(t0))
	}
	_, etag, _, err := e.admin.Status(ctx, name, httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, nm, err := e.admin.Status(ctx, name, httpapi.FetchOptions{ETag: etag}); err != nil || !nm {
		t.Fatalf("status with its own ETag: not modified %v, %v", nm, err)
	}

	// Bud: JSON with cert and key.
	certs, keys, err := e.admin.Bud(ctx, name)
	if err != nil || len(certs) != 1 || certs[0] != string(full.Data) || keys[0] != string(key.Data) {
		t.Fatalf("bud = %d certs, %d keys, %v", len(certs), len(keys), err)
	}

	// Caddy through the URL listener: chain and key in one PEM bundle;
	// 204 for a name certfleet does not manage.
	urlSecret := e.token(nil, true, certfleet.PermReadKeys)
	resp, body := httpGet(t, e.urlAPI.URL+"/u/"+urlSecret+"/v1/tls/get_certificate?server_name="+name+"&signature_schemes=403,804", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("get_certificate: %d %s", resp.StatusCode, body)
	}
	if _, err := tls.X509KeyPair(body, body); err != nil {
		t.Fatalf("get_certificate bundle is not chain+key: %v", err)
	}
	resp, _ = httpGet(t, e.urlAPI.URL+"/u/"+urlSecret+"/v1/tls/get_certificate?server_name=other.e2e.test", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("get_certificate for an unmanaged name: %d, want 204", resp.StatusCode)
	}
	// Bud's OCSP lookup: JSON 404 {}.
	resp, body = httpGet(t, e.urlAPI.URL+"/u/"+urlSecret+"/v1/bud/ocsp/abc", nil)
	if resp.StatusCode != 404 || strings.TrimSpace(string(body)) != "{}" {
		t.Fatalf("bud ocsp: %d %q", resp.StatusCode, body)
	}

	// Every key read was recorded: privkey, bud, get_certificate.
	reads, err := e.store.KeyReads(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) != 3 {
		t.Fatalf("%d key reads recorded, want 3 (privkey, bud, get_certificate): %+v", len(reads), reads)
	}
	for _, r := range reads {
		if r.Spec != name || !certfleet.SameSerial(r.Serial, st.Keys[0].Serial) || r.TokenID == "" || r.Remote == "" {
			t.Errorf("key read %+v", r)
		}
	}
	// A 304 on privkey sends no key and records nothing.
	if p, err := e.admin.Fetch(ctx, name, "privkey", httpapi.FetchOptions{ETag: key.ETag}); err != nil || !p.NotModified {
		t.Fatalf("conditional privkey = %+v, %v", p, err)
	}
	if reads2, _ := e.store.KeyReads(ctx, 0); len(reads2) != 3 {
		t.Errorf("a 304 recorded a key read")
	}

	// Listing.
	list, err := e.admin.Certificates(ctx, "", 0)
	if err != nil || len(list.Certificates) != 1 || list.Certificates[0].Name != name {
		t.Fatalf("certificates = %+v, %v", list, err)
	}
	info, err := e.admin.Certificate(ctx, name)
	if err != nil || info.Keys[0].Serial != st.Keys[0].Serial {
		t.Fatalf("certificate = %+v, %v", info, err)
	}
	// The status page for browsers.
	resp, body = httpGet(t, e.api.URL+"/v1/names/"+name+"/status", http.Header{"Accept": {"text/html"}, "Authorization": {"Bearer " + e.admin.Token}})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), st.Keys[0].Serial) {
		t.Fatalf("HTML status: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func httpGet(t *testing.T, u string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	return httpDo(t, "GET", u, h, nil)
}

func httpDo(t *testing.T, method, u string, h http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestDual requests one RSA and one ECDSA certificate for a name.
func TestDual(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "dual.e2e.test"
	st := e.issue(name, &httpapi.NameRequest{KeyTypes: []string{"ecdsa-p256", "rsa2048"}})
	if len(st.Keys) != 2 {
		t.Fatalf("keys = %+v", st.Keys)
	}
	for _, fam := range []string{"rsa", "ecdsa", ""} {
		full, err := e.admin.Fetch(ctx, name, "fullchain", httpapi.FetchOptions{Key: fam})
		if err != nil {
			t.Fatal(err)
		}
		key, err := e.admin.Fetch(ctx, name, "privkey", httpapi.FetchOptions{Key: fam})
		if err != nil {
			t.Fatal(err)
		}
		leaf := e.verify(full.Data, name)
		_, isRSA := leaf.PublicKey.(*rsa.PublicKey)
		if isRSA != (fam == "rsa") {
			t.Errorf("?key=%q gave a %T certificate", fam, leaf.PublicKey)
		}
		if _, err := tls.X509KeyPair(full.Data, key.Data); err != nil {
			t.Errorf("?key=%q: key does not match: %v", fam, err)
		}
	}
	certs, keys, err := e.admin.Bud(ctx, name)
	if err != nil || len(certs) != 2 || len(keys) != 2 {
		t.Fatalf("bud for a dual certificate = %d certs, %d keys, %v; want arrays of 2", len(certs), len(keys), err)
	}
	// Caddy: ECDSA for a client offering ecdsa_secp256r1_sha256, RSA otherwise.
	sec := e.token(nil, true, certfleet.PermReadKeys)
	for schemes, wantRSA := range map[string]bool{"403,804": false, "804,401": true} {
		_, body := httpGet(t, e.urlAPI.URL+"/u/"+sec+"/v1/tls/get_certificate?server_name="+name+"&signature_schemes="+schemes, nil)
		c, err := tls.X509KeyPair(body, body)
		if err != nil {
			t.Fatal(err)
		}
		_, isRSA := c.Leaf.PublicKey.(*rsa.PublicKey)
		if isRSA != wantRSA {
			t.Errorf("signature_schemes=%s: RSA %v, want %v", schemes, isRSA, wantRSA)
		}
	}
}

// TestWithdrawAndReuse: a withdrawn name wanted again gets its certificate
// back without a new order.
func TestWithdrawAndReuse(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "again.e2e.test"
	st := e.issue(name, nil)
	orders := e.ca.NewOrders()
	if err := e.admin.DeleteName(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	var prob *httpapi.Problem
	if _, err := e.admin.Fetch(ctx, name, "cert", httpapi.FetchOptions{}); !errors.As(err, &prob) || prob.Status != 404 {
		t.Fatalf("GET after withdrawal: %v, want a 404 problem", err)
	}
	if err := e.admin.DeleteName(ctx, name, false); !errors.As(err, &prob) || prob.Status != 404 {
		t.Fatalf("second DELETE: %v, want 404", err)
	}
	st2, err := e.admin.PutName(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Issued || st2.Keys[0].Serial != st.Keys[0].Serial {
		t.Fatalf("re-requested: %+v; want the archived certificate %s at once", st2, st.Keys[0].Serial)
	}
	time.Sleep(1500 * time.Millisecond) // give the manager a chance to misbehave
	if n := e.ca.NewOrders(); n != orders {
		t.Fatalf("re-requesting a withdrawn name placed %d new order(s)", n-orders)
	}
	if _, err := e.admin.Fetch(ctx, name, "fullchain", httpapi.FetchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRevoke: DELETE ?revoke=true revokes at the CA and destroys the key;
// wanting the name again orders a new certificate.
func TestRevoke(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "revoke.e2e.test"
	st := e.issue(name, nil)
	serial := st.Keys[0].Serial
	if got := e.certStatus(serial); got != "Valid" {
		t.Fatalf("before: CA says %q", got)
	}
	if err := e.admin.DeleteName(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if got := e.certStatus(serial); got != "Revoked" {
		t.Fatalf("after DELETE ?revoke=true the CA says %q, want Revoked", got)
	}
	all, err := e.store.Issuances(ctx, certfleet.IssuanceFilter{Spec: name})
	if err != nil || len(all) != 1 {
		t.Fatalf("archive: %d, %v", len(all), err)
	}
	if len(all[0].KeyPEM) != 0 {
		t.Fatal("the revoked certificate's private key is still in the store")
	}
	orders := e.ca.NewOrders()
	st2 := e.issue(name, nil)
	if st2.Keys[0].Serial == serial || e.ca.NewOrders() == orders {
		t.Fatalf("re-requested after revocation: serial %s (old %s); want a new order", st2.Keys[0].Serial, serial)
	}
}

// TestCSRMode: the host keeps its key; certfleet never holds one.
func TestCSRMode(t *testing.T) {
	e := newEnv(t, 0)
	ctx := t.Context()
	const name = "csr.e2e.test"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name, "www." + name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	// A token that does not cover every name of the CSR is refused.
	narrow := e.client(e.token([]string{name}, false, certfleet.PermRequestNames))
	var prob *httpapi.Problem
	if _, err := narrow.SubmitCSR(ctx, name, csrPEM); !errors.As(err, &prob) || prob.Status != 403 {
		t.Fatalf("CSR with a name outside the token: %v, want 403", err)
	}
	st, err := e.admin.SubmitCSR(ctx, name, csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "csr" || len(st.Identifiers) != 2 {
		t.Fatalf("status = %+v", st)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if st, err = e.admin.WaitIssued(wctx, name); err != nil {
		t.Fatalf("%v (%+v)", err, st)
	}
	full, err := e.admin.Fetch(ctx, name, "fullchain", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaf := e.verify(full.Data, "www."+name)
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	if _, err := e.admin.Fetch(ctx, name, "privkey", httpapi.FetchOptions{}); !errors.As(err, &prob) || prob.Status != 404 {
		t.Fatalf("privkey in CSR mode: %v, want 404", err)
	}
	all, err := e.store.Issuances(ctx, certfleet.IssuanceFilter{Spec: name})
	if err != nil || len(all) == 0 {
		t.Fatal(err)
	}
	for _, iss := range all {
		if len(iss.KeyPEM) != 0 {
			t.Fatalf("issuance %d holds a private key in CSR mode", iss.ID)
		}
	}
	job, err := e.store.Job(ctx, certfleet.JobKey{Spec: name, KeyType: certfleet.ECDSAP256})
	if err != nil || len(job.PendingKeyPEM) != 0 {
		t.Fatalf("job: pending key %d bytes, %v", len(job.PendingKeyPEM), err)
	}
}

// TestPacking: with PackSize 2, names share certificates; adding or
// removing a name re-issues only the certificate that holds it.
func TestPacking(t *testing.T) {
	e := newEnv(t, 2)
	ctx := t.Context()
	a := e.issue("a.pack.test", nil)
	b := e.issue("b.pack.test", nil)
	if a.Certificate != b.Certificate || len(b.Identifiers) != 2 {
		t.Fatalf("a in %q, b in %q (%v); want one certificate for both", a.Certificate, b.Certificate, b.Identifiers)
	}
	c := e.issue("c.pack.test", nil)
	if c.Certificate == a.Certificate {
		t.Fatalf("c packed into a full certificate")
	}
	full, err := e.admin.Fetch(ctx, "a.pack.test", "fullchain", httpapi.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaf := e.verify(full.Data, "b.pack.test")
	cSerial := c.Keys[0].Serial
	orders := e.ca.NewOrders()

	// Remove b: a's certificate is re-issued without it; c's is untouched.
	if err := e.admin.DeleteName(ctx, "b.pack.test", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, _, _, err := e.admin.Status(ctx, "a.pack.test", httpapi.FetchOptions{})
		if err == nil && st.Issued && st.Keys[0].Serial != leaf.SerialNumber.Text(16) {
			if len(st.Identifiers) != 1 {
				t.Fatalf("after removing b: %v", st.Identifiers)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's certificate was not re-issued: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	full, _ = e.admin.Fetch(ctx, "a.pack.test", "fullchain", httpapi.FetchOptions{})
	if l := e.verify(full.Data, "a.pack.test"); l.VerifyHostname("b.pack.test") == nil {
		t.Error("a's new certificate still holds b")
	}
	var prob *httpapi.Problem
	if _, err := e.admin.Fetch(ctx, "b.pack.test", "cert", httpapi.FetchOptions{}); !errors.As(err, &prob) || prob.Status != 404 {
		t.Errorf("b after removal: %v, want 404", err)
	}
	// Add d: it goes into a's certificate (room for one more); only that
	// one is re-issued.
	e.issue("d.pack.test", nil)
	if st, _, _, _ := e.admin.Status(ctx, "c.pack.test", httpapi.FetchOptions{}); st.Keys[0].Serial != cSerial {
		t.Errorf("c's certificate was re-issued (serial %s, was %s)", st.Keys[0].Serial, cSerial)
	}
	if n := e.ca.NewOrders() - orders; n != 2 {
		t.Errorf("%d orders for one removal and one addition, want 2", n)
	}
}

var _ = url.PathEscape
