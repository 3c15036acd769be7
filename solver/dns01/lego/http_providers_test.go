package lego_test

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
	"github.com/certfleet/certfleet/solver/dns01/lego"
)

const testKA = "token-1.thumbprint"

// TestCloudflare: zone lookup by name (the list), record creation with the
// token as bearer, deletion by the id the creation returned.
func TestCloudflare(t *testing.T) {
	rec := testRecord(testKA)
	auth := map[string]string{"Authorization": "Bearer cf-token"}
	a := newAPIServer(t,
		exchange{method: "GET", path: "/zones?name=example.com&per_page=50", header: auth,
			reply: `{"success":true,"result":[{"id":"zone-1","name":"example.com"}]}`},
		exchange{method: "POST", path: "/zones/zone-1/dns_records", header: auth,
			body:  fmt.Sprintf(`{"type":"TXT","name":"_acme-challenge.example.com","content":"\"%s\"","ttl":120}`, rec.Value),
			reply: `{"success":true,"result":{"id":"rec-7","type":"TXT","name":"_acme-challenge.example.com"}}`},
		// The zone's id is cached: no second lookup.
		exchange{method: "DELETE", path: "/zones/zone-1/dns_records/rec-7", header: auth,
			reply: `{"success":true,"result":{"id":"rec-7"}}`},
	)
	p := mustProvider(t, "cloudflare", map[string]string{"api_token": "cf-token", "base_url": a.URL()}, nil)
	presentAndCleanUp(t, p, rec)
}

// TestDigitalOcean: record creation with the token as bearer, deletion by
// the returned id (lego's DigitalOcean provider lists nothing).
func TestDigitalOcean(t *testing.T) {
	rec := testRecord(testKA)
	auth := map[string]string{"Authorization": "Bearer do-token"}
	a := newAPIServer(t,
		exchange{method: "POST", path: "/v2/domains/example.com/records", header: auth,
			body:   fmt.Sprintf(`{"type":"TXT","name":"_acme-challenge.example.com.","data":"%s","ttl":120}`, rec.Value),
			status: http.StatusCreated, reply: `{"domain_record":{"id":1234,"type":"TXT"}}`},
		exchange{method: "DELETE", path: "/v2/domains/example.com/records/1234", header: auth, status: http.StatusNoContent},
	)
	p := mustProvider(t, "digitalocean", map[string]string{"api_token": "do-token", "base_url": a.URL()}, nil)
	presentAndCleanUp(t, p, rec)
}

// TestHetzner: the Hetzner Cloud API's add_records and remove_records
// actions on the RRset, each followed by a poll of the action (lego lists
// nothing). Hetzner's API URL is not configurable in lego: the client is
// redirected, and the test checks the requests were for api.hetzner.cloud.
func TestHetzner(t *testing.T) {
	rec := testRecord(testKA)
	auth := map[string]string{"Authorization": "Bearer hz-token"}
	h := "api.hetzner.cloud"
	a := newAPIServer(t,
		exchange{method: "POST", host: h, path: "/v1/zones/example.com/rrsets/_acme-challenge/TXT/actions/add_records", header: auth,
			body:   fmt.Sprintf(`{"ttl":120,"records":[{"value":"\"%s\""}]}`, rec.Value),
			status: http.StatusCreated, reply: `{"action":{"id":42,"command":"add_records","status":"running"}}`},
		exchange{method: "GET", host: h, path: "/v1/actions/42", header: auth, reply: `{"action":{"id":42,"status":"success"}}`},
		exchange{method: "POST", host: h, path: "/v1/zones/example.com/rrsets/_acme-challenge/TXT/actions/remove_records", header: auth,
			body:   fmt.Sprintf(`{"records":[{"value":"\"%s\""}]}`, rec.Value),
			status: http.StatusCreated, reply: `{"action":{"id":43,"command":"remove_records","status":"running"}}`},
		exchange{method: "GET", host: h, path: "/v1/actions/43", header: auth, reply: `{"action":{"id":43,"status":"success"}}`},
	)
	p := mustProvider(t, "hetzner", map[string]string{"api_token": "hz-token"}, a.redirect())
	presentAndCleanUp(t, p, rec)
}

// TestGandi: LiveDNS reads the name's TXT set (the list), writes it back
// with the value added, and deletes the set at cleanup.
func TestGandi(t *testing.T) {
	rec := testRecord(testKA)
	auth := map[string]string{"Authorization": "Bearer gandi-pat"}
	a := newAPIServer(t,
		exchange{method: "GET", path: "/domains/example.com/records/_acme-challenge/TXT", header: auth,
			status: http.StatusOK, reply: `{"rrset_name":"_acme-challenge","rrset_type":"TXT","rrset_values":["other"]}`},
		exchange{method: "PUT", path: "/domains/example.com/records/_acme-challenge/TXT", header: auth,
			body:   fmt.Sprintf(`{"rrset_ttl":300,"rrset_values":["%s","other"]}`, rec.Value),
			status: http.StatusCreated, reply: `{"message":"DNS Record Created"}`},
		exchange{method: "DELETE", path: "/domains/example.com/records/_acme-challenge/TXT", header: auth, status: http.StatusNoContent},
	)
	p := mustProvider(t, "gandi", map[string]string{"personal_access_token": "gandi-pat", "base_url": a.URL()}, nil)
	presentAndCleanUp(t, p, rec)
}

// TestPorkbun: creation and deletion by id, the keys in the JSON body
// (Porkbun's way); the API URL is not configurable in lego: redirected,
// and checked to be for api.porkbun.com.
func TestPorkbun(t *testing.T) {
	rec := testRecord(testKA)
	h := "api.porkbun.com"
	keys := `"apikey":"pk1_key","secretapikey":"sk1_secret"`
	a := newAPIServer(t,
		exchange{method: "POST", host: h, path: "/api/json/v3/dns/create/example.com",
			body:  fmt.Sprintf(`{%s,"name":"_acme-challenge","type":"TXT","content":"%s","ttl":"600"}`, keys, rec.Value),
			reply: `{"status":"SUCCESS","id":106926659}`},
		exchange{method: "POST", host: h, path: "/api/json/v3/dns/delete/example.com/106926659",
			body: fmt.Sprintf(`{%s}`, keys), reply: `{"status":"SUCCESS"}`},
	)
	p := mustProvider(t, "porkbun", map[string]string{"api_key": "pk1_key", "secret_api_key": "sk1_secret"}, a.redirect())
	presentAndCleanUp(t, p, rec)
}

// ovhSigned checks OVH's request signature: "$1$" + hex(SHA-1(application
// secret + consumer key + method + URL + body + timestamp, joined by "+")).
func ovhSigned(base string) func(r *http.Request, body []byte) error {
	return func(r *http.Request, body []byte) error {
		ts := r.Header.Get("X-Ovh-Timestamp")
		sum := sha1.Sum([]byte(strings.Join([]string{"ovh-app-secret", "ovh-consumer", r.Method, base + r.URL.RequestURI(), string(body), ts}, "+")))
		if want := "$1$" + hex.EncodeToString(sum[:]); r.Header.Get("X-Ovh-Signature") != want {
			return fmt.Errorf("X-Ovh-Signature %q, want %q", r.Header.Get("X-Ovh-Signature"), want)
		}
		return nil
	}
}

// TestOVH: go-ovh asks the server's time once, then lego creates the
// record, refreshes the zone, and at cleanup deletes the record by id and
// refreshes again; every call signed with the application secret.
func TestOVH(t *testing.T) {
	rec := testRecord(testKA)
	var base string
	check := func(r *http.Request, body []byte) error { return ovhSigned(base)(r, body) }
	auth := map[string]string{"X-Ovh-Application": "ovh-app", "X-Ovh-Consumer": "ovh-consumer"}
	a := newAPIServer(t,
		exchange{method: "GET", path: "/auth/time", reply: fmt.Sprint(time.Now().Unix())},
		exchange{method: "POST", path: "/domain/zone/example.com/record", header: auth, check: check,
			body:  fmt.Sprintf(`{"fieldType":"TXT","subDomain":"_acme-challenge","target":"%s","ttl":120}`, rec.Value),
			reply: `{"id":9001,"fieldType":"TXT","subDomain":"_acme-challenge","zone":"example.com"}`},
		exchange{method: "POST", path: "/domain/zone/example.com/refresh", header: auth, check: check, reply: `null`},
		exchange{method: "DELETE", path: "/domain/zone/example.com/record/9001", header: auth, check: check, reply: `null`},
		exchange{method: "POST", path: "/domain/zone/example.com/refresh", header: auth, check: check, reply: `null`},
	)
	base = a.URL()
	p := mustProvider(t, "ovh", map[string]string{"endpoint": a.URL(), "application_key": "ovh-app",
		"application_secret": "ovh-app-secret", "consumer_key": "ovh-consumer"}, nil)
	presentAndCleanUp(t, p, rec)
}

// TestWholeNameCleanUpWaitsForTheLast: lego's Gandi provider deletes the
// whole TXT set at cleanup; with a wildcard's and its apex's values under
// one name, the set goes only when the second value is cleaned up.
func TestWholeNameCleanUpWaitsForTheLast(t *testing.T) {
	wild, apex := testRecord("wild.thumb"), testRecord("apex.thumb")
	auth := map[string]string{"Authorization": "Bearer gandi-pat"}
	set := "/domains/example.com/records/_acme-challenge/TXT"
	a := newAPIServer(t,
		exchange{method: "GET", path: set, header: auth, status: http.StatusNotFound, reply: `{"code":404,"message":"Unknown record","object":"dns-record","cause":"Not Found"}`},
		exchange{method: "PUT", path: set, header: auth, body: fmt.Sprintf(`{"rrset_ttl":300,"rrset_values":["%s"]}`, wild.Value),
			status: http.StatusCreated, reply: `{"message":"DNS Record Created"}`},
		exchange{method: "GET", path: set, header: auth, reply: fmt.Sprintf(`{"rrset_name":"_acme-challenge","rrset_type":"TXT","rrset_values":["%s"]}`, wild.Value)},
		exchange{method: "PUT", path: set, header: auth, body: fmt.Sprintf(`{"rrset_ttl":300,"rrset_values":["%s","%s"]}`, apex.Value, wild.Value),
			status: http.StatusCreated, reply: `{"message":"DNS Record Created"}`},
		// One DELETE, after the second cleanup.
		exchange{method: "DELETE", path: set, header: auth, status: http.StatusNoContent},
	)
	p := mustProvider(t, "gandi", map[string]string{"personal_access_token": "gandi-pat", "base_url": a.URL()}, nil)
	ctx := t.Context()
	for _, rec := range []dns01.Record{wild, apex} {
		if err := p.Present(ctx, rec); err != nil {
			t.Fatalf("present: %v", err)
		}
	}
	if err := p.CleanUp(ctx, wild); err != nil {
		t.Fatalf("clean up the wildcard's value: %v", err)
	}
	a.mu.Lock()
	sent := a.next
	a.mu.Unlock()
	if sent != 4 {
		t.Fatalf("after the first cleanup %d requests were sent, want 4 (no DELETE while the apex's value is in use)", sent)
	}
	if err := p.CleanUp(ctx, apex); err != nil {
		t.Fatalf("clean up the apex's value: %v", err)
	}
}

// TestForgetfulProviderAfterRestart: lego's Cloudflare provider keeps
// record ids in memory, so a record presented by an earlier process cannot
// be removed through it. CleanUp asks the zone's nameservers: a record
// still served is an error naming it, to be removed by hand; one no longer
// served is done. Neither sends a request to the API.
func TestForgetfulProviderAfterRestart(t *testing.T) {
	srv, err := dnstest.Start("127.0.0.1", "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.AddZone("example.com", "ns1.example.com")
	srv.Add("ns1.example.com. 60 IN A 127.0.0.1")
	res := &dns01.Resolver{Nameservers: []string{srv.Addr()}, AuthPort: srv.Port(), Timeout: 2 * time.Second}
	a := newAPIServer(t) // no request expected
	p, err := lego.New(lego.Settings{Type: "cloudflare", Resolver: res,
		Keys: map[string]string{"api_token": "cf-token", "base_url": a.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	rec := testRecord(testKA)
	if err := p.CleanUp(t.Context(), rec); err != nil {
		t.Errorf("clean up a record no nameserver serves: %v", err)
	}
	srv.Add(fmt.Sprintf("_acme-challenge.example.com. 60 IN TXT %q", rec.Value))
	err = p.CleanUp(t.Context(), rec)
	if err == nil || !strings.Contains(err.Error(), "remove it by hand") || !strings.Contains(err.Error(), rec.Value) {
		t.Errorf("clean up a leftover record: %v, want an error that names it and says to remove it by hand", err)
	}
}

// TestSecretsNotShown: neither a provider's description nor lego's
// errors on a refused key show the key.
func TestSecretsNotShown(t *testing.T) {
	a := newAPIServer(t,
		exchange{method: "GET", path: "/zones?name=example.com&per_page=50", header: map[string]string{"Authorization": "Bearer s3cr3t-token"},
			status: http.StatusForbidden, reply: `{"success":false,"errors":[{"code":9109,"message":"Invalid access token"}]}`},
	)
	p := mustProvider(t, "cloudflare", map[string]string{"api_token": "s3cr3t-token", "base_url": a.URL()}, nil)
	err := p.Check(t.Context(), testRecord(testKA))
	if err == nil || !strings.Contains(err.Error(), "Invalid access token") {
		t.Fatalf("check with a refused token: %v", err)
	}
	for _, s := range []string{err.Error(), p.String(), fmt.Sprintf("%v %+v %#v", p, p, p)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("%q shows the token", s)
		}
	}
}
