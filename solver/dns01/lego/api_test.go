package lego_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/lego"
)

// The providers that cannot run here are tested against a local HTTP
// server that plays the service's API: it expects one exact sequence of
// requests (method, host, path and query, authentication headers, JSON
// body), answers each as the service documents, and fails the test on any
// request it did not expect. That is what lego sends for one Present and
// one CleanUp; the exchanges are written from the services' API
// documentation, so a change in lego's requests shows here.

// exchange is one request the provider must send and the answer it gets.
type exchange struct {
	method string
	// host is the Host the request was meant for (the service's API host
	// when the test redirects the client, the server's when base_url
	// points at it); "" accepts any.
	host string
	// path is the request's path and, after "?", its query (compared as
	// a set of parameters).
	path string
	// header lists headers that must have exactly these values.
	header map[string]string
	// check, if set, inspects the request further (signatures).
	check func(r *http.Request, body []byte) error
	// body is the JSON the request must carry (compared as JSON); ""
	// means no body; "xml" and "form" leave the body to check.
	body   string
	status int
	reply  string
}

// apiServer serves a fixed sequence of exchanges.
type apiServer struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex // guards want, next
	want []exchange
	next int
}

func newAPIServer(t *testing.T, want ...exchange) *apiServer {
	t.Helper()
	a := &apiServer{t: t, want: want}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	t.Cleanup(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.next != len(a.want) {
			t.Errorf("the provider sent %d of the %d expected requests; next missing: %s %s", a.next, len(a.want), a.want[a.next].method, a.want[a.next].path)
		}
	})
	return a
}

// URL is the server's base URL.
func (a *apiServer) URL() string { return a.srv.URL }

// redirect returns an HTTP client that sends every request to the server,
// keeping its Host: for providers whose API URL cannot be configured.
func (a *apiServer) redirect() *http.Client {
	target, _ := url.Parse(a.srv.URL)
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		if r.Host == "" {
			r.Host = r.URL.Host
		}
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	i := a.next
	a.next++
	a.mu.Unlock()
	got := fmt.Sprintf("%s %s%s", r.Method, r.Host, r.URL.RequestURI())
	if i >= len(a.want) {
		a.t.Errorf("unexpected request %d: %s %s", i, got, body)
		http.Error(w, "unexpected", http.StatusInternalServerError)
		return
	}
	x := a.want[i]
	if err := x.match(r, body); err != nil {
		a.t.Errorf("request %d: %s with body %s: %v", i, got, body, err)
		http.Error(w, "unexpected", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	status := x.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	io.WriteString(w, x.reply)
}

func (x exchange) match(r *http.Request, body []byte) error {
	if r.Method != x.method {
		return fmt.Errorf("method %s, want %s", r.Method, x.method)
	}
	if x.host != "" && r.Host != x.host {
		return fmt.Errorf("host %s, want %s", r.Host, x.host)
	}
	path, query, _ := strings.Cut(x.path, "?")
	if r.URL.Path != path {
		return fmt.Errorf("path %s, want %s", r.URL.Path, path)
	}
	wantQ, _ := url.ParseQuery(query)
	if gotQ := r.URL.Query(); !reflect.DeepEqual(map[string][]string(gotQ), map[string][]string(wantQ)) && (len(gotQ) > 0 || len(wantQ) > 0) {
		return fmt.Errorf("query %v, want %v", gotQ, wantQ)
	}
	for k, v := range x.header {
		if got := r.Header.Get(k); got != v {
			return fmt.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	switch {
	case x.body == "" && len(bytes.TrimSpace(body)) > 0:
		return fmt.Errorf("unexpected body")
	case x.body == "xml" || x.body == "form":
		// Checked by x.check.
	case x.body != "":
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Errorf("body is not JSON: %v", err)
		}
		if err := json.Unmarshal([]byte(x.body), &want); err != nil {
			return fmt.Errorf("test's body is not JSON: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("body differs, want %s", x.body)
		}
	}
	if x.check != nil {
		return x.check(r, body)
	}
	return nil
}

// testRecord is the record the API tests present: _acme-challenge of
// example.com in zone example.com.
func testRecord(ka string) dns01.Record {
	return dns01.Record{Domain: "example.com", FQDN: "_acme-challenge.example.com.", Zone: "example.com.",
		KeyAuthorization: ka, Value: dns01.RecordValue(ka)}
}

// mustProvider builds a provider of typ from keys, its requests going
// through hc.
func mustProvider(t *testing.T, typ string, keys map[string]string, hc *http.Client) *lego.Provider {
	t.Helper()
	p, err := lego.New(lego.Settings{Type: typ, Keys: keys, HTTPClient: hc})
	if err != nil {
		t.Fatalf("new %s provider: %v", typ, err)
	}
	return p
}

// presentAndCleanUp presents rec and cleans it up, failing the test on an
// error.
func presentAndCleanUp(t *testing.T, p *lego.Provider, rec dns01.Record) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := p.Present(ctx, rec); err != nil {
		t.Fatalf("present: %v", err)
	}
	if err := p.CleanUp(ctx, rec); err != nil {
		t.Fatalf("clean up: %v", err)
	}
}
