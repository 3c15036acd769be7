package dns01_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/acmedns"
	"github.com/certfleet/certfleet/solver/dns01/dnstest"
	"github.com/certfleet/certfleet/solver/dns01/exec"
	"github.com/certfleet/certfleet/solver/dns01/rfc2136"
	"github.com/certfleet/certfleet/solver/dns01/webhook"
)

// The exec hook of TestExecHook is this test binary run again with hookEnv
// set: it checks the lego-style arguments against the CERTFLEET_DNS_*
// environment and sends a real RFC 2136 update.
const hookEnv = "CERTFLEET_TEST_DNS_HOOK"

func runHook() int {
	if len(os.Args) != 4 {
		fmt.Fprintf(os.Stderr, "hook: want ACTION FQDN VALUE, got %q\n", os.Args[1:])
		return 2
	}
	action, fqdn, value := os.Args[1], os.Args[2], os.Args[3]
	if action != os.Getenv("CERTFLEET_DNS_ACTION") || fqdn != os.Getenv("CERTFLEET_DNS_FQDN") || value != os.Getenv("CERTFLEET_DNS_VALUE") {
		fmt.Fprintln(os.Stderr, "hook: arguments and environment disagree")
		return 2
	}
	p := &rfc2136.Provider{Server: os.Getenv("HOOK_SERVER"), KeyName: keyName, Secret: os.Getenv("HOOK_SECRET")}
	rec := dns01.Record{FQDN: fqdn, Value: value, Zone: os.Getenv("CERTFLEET_DNS_ZONE")}
	var err error
	if action == "present" {
		err = p.Present(context.Background(), rec)
	} else {
		err = p.CleanUp(context.Background(), rec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hook:", err)
		return 1
	}
	return 0
}

func TestExecHook(t *testing.T) {
	e := newEnv(t, 0)
	p := &exec.Provider{
		Program: os.Args[0],
		Env:     []string{hookEnv + "=1", "HOOK_SERVER=" + e.primary.Addr(), "HOOK_SECRET=" + e.secret},
		Timeout: 30 * time.Second,
	}
	if err := e.issue(t, e.solver(p), "*.hook.example.test", "hook.example.test"); err != nil {
		t.Fatal(err)
	}
	if e.primary.Applied("_acme-challenge.hook.example.test") != 2 {
		t.Errorf("the hook wrote %d values, want 2", e.primary.Applied("_acme-challenge.hook.example.test"))
	}
	if got := e.primary.TXT("_acme-challenge.hook.example.test"); len(got) != 0 {
		t.Errorf("TXT after cleanup = %q", got)
	}
}

func TestExecHookFailures(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rec := dns01.Record{Domain: "a.example", FQDN: "_acme-challenge.a.example.", Zone: "a.example.", Value: "v"}
	for _, tc := range []struct {
		name, body string
		timeout    time.Duration
		want       []string
	}{
		{"exit status and stderr tail", "echo 'line one' >&2; echo \"zone=$CERTFLEET_DNS_ZONE args=$*\" >&2; exit 3", 0,
			[]string{"present _acme-challenge.a.example.", "exit status 3", "stderr: line one zone=a.example. args=present _acme-challenge.a.example. v"}},
		{"long stderr is cut", "head -c 5000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1", 0, []string{"…xxx", "END"}},
		{"timeout", "sleep 10", 300 * time.Millisecond, []string{"killed after 300ms (timeout)"}},
		{"no stderr", "exit 1", 0, []string{"(no output on stderr)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &exec.Provider{Program: script(strings.ReplaceAll(tc.name, " ", "_"), tc.body), Timeout: tc.timeout}
			start := time.Now()
			err := p.Present(t.Context(), rec)
			if err == nil {
				t.Fatal("Present succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(err.Error()) > 1400 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
}

func TestWebhook(t *testing.T) {
	e := newEnv(t, 0)
	const token = "s3cret-token"
	up := e.provider(e.secret)
	var mu sync.Mutex
	var actions []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		var req webhook.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		actions = append(actions, req.Action+" "+req.FQDN+" "+req.Zone+" "+req.Domain)
		mu.Unlock()
		rec := dns01.Record{FQDN: req.FQDN, Zone: req.Zone, Value: req.Value}
		var err error
		if req.Action == "present" {
			err = up.Present(r.Context(), rec)
		} else {
			err = up.CleanUp(r.Context(), rec)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	p := &webhook.Provider{URL: srv.URL + "/dns", BearerToken: token, CAPEM: caPEM}
	if err := e.issue(t, e.solver(p), "web.example.test"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(actions, "; ")
	mu.Unlock()
	want := "present _acme-challenge.web.example.test. example.test. web.example.test; cleanup _acme-challenge.web.example.test. example.test. web.example.test"
	if got != want {
		t.Errorf("webhook calls = %s\nwant %s", got, want)
	}

	bad := &webhook.Provider{URL: srv.URL + "/dns", BearerToken: "wrong", CAPEM: caPEM}
	err := bad.Present(t.Context(), dns01.Record{FQDN: "x.example.test.", Zone: "example.test.", Value: "v"})
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong token: error %v; want a 401 without the token", err)
	}
	untrusted := &webhook.Provider{URL: srv.URL + "/dns", BearerToken: token}
	if err := untrusted.Present(t.Context(), dns01.Record{FQDN: "x.example.test.", Value: "v"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: error %v, want a certificate error", err)
	}
}

// acmeDNSServer is a small acme-dns: /register and /update, publishing in
// zone acmedns.test of a dnstest server, keeping two values per subdomain.
type acmeDNSServer struct {
	dns   *dnstest.Server
	mu    sync.Mutex
	users map[string][2]string // username → password, subdomain
	txt   map[string][]string
}

func (a *acmeDNSServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch r.URL.Path {
	case "/register":
		b := make([]byte, 8)
		rand.Read(b)
		sub := hex.EncodeToString(b)
		user, pass := "u"+sub, "p"+sub
		a.users[user] = [2]string{pass, sub}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"username": user, "password": pass, "subdomain": sub, "fulldomain": sub + ".acmedns.test", "allowfrom": []string{}})
	case "/update":
		u, ok := a.users[r.Header.Get("X-Api-User")]
		if !ok || u[0] != r.Header.Get("X-Api-Key") {
			http.Error(w, `{"error": "unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var req struct{ Subdomain, Txt string }
		json.NewDecoder(r.Body).Decode(&req)
		if req.Subdomain != u[1] || len(req.Txt) != 43 {
			http.Error(w, `{"error": "bad_subdomain or bad_txt"}`, http.StatusBadRequest)
			return
		}
		vals := append(a.txt[req.Subdomain], req.Txt)
		if len(vals) > 2 {
			vals = vals[len(vals)-2:]
		}
		a.txt[req.Subdomain] = vals
		a.dns.SetTXT(req.Subdomain+".acmedns.test", vals...)
		json.NewEncoder(w).Encode(map[string]string{"txt": req.Txt})
	default:
		http.NotFound(w, r)
	}
}

func TestACMEDNS(t *testing.T) {
	e := newEnv(t, 0)
	e.primary.AddZone("acmedns.test", "ns1.example.test")
	srv := httptest.NewServer(&acmeDNSServer{dns: e.primary, users: map[string][2]string{}, txt: map[string][]string{}})
	defer srv.Close()
	creds := filepath.Join(t.TempDir(), "acme-dns.json")
	p := &acmedns.Provider{Server: srv.URL, CredentialsFile: creds}
	s := e.solver(p)

	// Before the CNAME exists, the preflight registers and says what to
	// create; no order is placed.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ids, _ := certfleet.ParseIdentifiers([]string{"ad.example.test"})
	err := s.Preflight(ctx, ids)
	if err == nil || !strings.Contains(err.Error(), "create the record _acme-challenge.ad.example.test. CNAME ") {
		t.Fatalf("preflight without CNAME: %v", err)
	}
	err = e.issue(t, s, "ad.example.test")
	if err == nil || !strings.Contains(err.Error(), "create the record _acme-challenge.ad.example.test. CNAME ") {
		t.Fatalf("issue without CNAME: %v", err)
	}
	acct, err := p.Account(ctx, "*.ad.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(creds); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	e.primary.Add("_acme-challenge.ad.example.test. 60 IN CNAME " + acct.FullDomain + ".")

	// A fresh provider reads the stored credentials: no second registration.
	p2 := &acmedns.Provider{Server: srv.URL, CredentialsFile: creds}
	if err := e.issue(t, e.solver(p2), "*.ad.example.test", "ad.example.test"); err != nil {
		t.Fatal(err)
	}
	acct2, _ := p2.Account(ctx, "ad.example.test")
	if acct2.Username != acct.Username || acct2.FullDomain != acct.FullDomain {
		t.Errorf("account changed: registered again")
	}
}
