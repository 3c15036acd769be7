package pebbleca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

func TestMain(m *testing.M) {
	// Pebble reads its knobs in its constructors; t.Setenv would rule out
	// t.Parallel.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

func newTestCA(t *testing.T, cfg pebbleca.Config) *pebbleca.CA {
	t.Helper()
	c, err := pebbleca.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close pebble: %v", err)
		}
	})
	return c
}

func mustGet(t *testing.T, client *http.Client, url string) []byte {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, body)
	}
	return body
}

func TestDirectoryAndRoots(t *testing.T) {
	t.Parallel()
	c := newTestCA(t, pebbleca.Config{Profiles: map[string]pebbleca.Profile{
		"short": {Description: "five minutes", ValidityPeriod: 5 * time.Minute},
	}})
	client := c.HTTPClient()

	var dir acme.Directory
	if err := json.Unmarshal(mustGet(t, client, c.DirectoryURL()), &dir); err != nil {
		t.Fatalf("decode directory: %v", err)
	}
	if dir.NewOrder == "" || dir.RenewalInfo == "" {
		t.Errorf("directory lacks newOrder or renewalInfo: %+v", dir)
	}
	if dir.Meta == nil || len(dir.Meta.Profiles) != 1 || dir.Meta.Profiles["short"] != "five minutes" {
		t.Errorf("directory profiles = %+v, want only short", dir.Meta)
	}

	// The management API serves the same root that RootsPEM returns.
	got := mustGet(t, client, c.ManagementURL()+"/roots/0")
	if want := c.RootsPEM(); !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("/roots/0 =\n%s\nwant RootsPEM\n%s", got, want)
	}

	// A client that does not trust TLSRootPEM cannot talk to the CA.
	if _, err := http.Get(c.DirectoryURL()); err == nil {
		t.Errorf("GET directory without trusting TLSRootPEM succeeded")
	}
}

func TestDNS(t *testing.T) {
	t.Parallel()
	c := newTestCA(t, pebbleca.Config{})
	c.DNS().SetTXT("_acme-challenge.a.example", "one", "two")

	tests := []struct {
		name  string
		net   string
		qname string
		qtype uint16
		want  []string
	}{
		{"A over tcp", "tcp", "anything.example.", dns.TypeA, []string{"127.0.0.1"}},
		{"A over udp", "udp", "x.test.", dns.TypeA, []string{"127.0.0.1"}},
		{"no AAAA", "tcp", "anything.example.", dns.TypeAAAA, nil},
		{"TXT values", "tcp", "_acme-challenge.A.example.", dns.TypeTXT, []string{"one", "two"}},
		{"no TXT", "tcp", "_acme-challenge.b.example.", dns.TypeTXT, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tc.qname, tc.qtype)
			in, _, err := (&dns.Client{Net: tc.net}).Exchange(m, c.DNS().Addr())
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			var got []string
			for _, rr := range in.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.AAAA:
					got = append(got, rr.AAAA.String())
				case *dns.TXT:
					got = append(got, rr.Txt...)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("answer = %q, want %q", got, tc.want)
			}
		})
	}

	c.DNS().ClearTXT("_acme-challenge.a.example")
	m := new(dns.Msg)
	m.SetQuestion("_acme-challenge.a.example.", dns.TypeTXT)
	in, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, c.DNS().Addr())
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if len(in.Answer) != 0 {
		t.Errorf("after ClearTXT: answer = %v, want none", in.Answer)
	}
}

func TestCountsOrders(t *testing.T) {
	t.Parallel()
	c := newTestCA(t, pebbleca.Config{})
	client := &acme.Client{Directory: c.DirectoryURL(), HTTPClient: c.HTTPClient()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := client.NewAccount(t.Context(), acme.Account{PrivateKey: key, TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("new account: %v", err)
	}
	for i := range 3 {
		if _, err := client.NewOrder(t.Context(), acct, acme.Order{
			Identifiers: []acme.Identifier{{Type: "dns", Value: "count.example"}},
		}); err != nil {
			t.Fatalf("new order %d: %v", i, err)
		}
	}
	if got := c.NewOrders(); got != 3 {
		t.Errorf("NewOrders() = %d, want 3", got)
	}
	if got := c.Finalizations(); got != 0 {
		t.Errorf("Finalizations() = %d, want 0", got)
	}
}

// TestDirectoryURLNotReusedWithPort: a CA started on the loopback port a
// closed one had must not share its directory URL. acmez keeps fetched
// directories by URL for the whole process, so a client of the second CA
// was served the first one's directory: without its profiles, "the CA does
// not offer profile short" (a daemon test flake under load, when the
// kernel gave a new test's CA the port of an earlier test's).
func TestDirectoryURLNotReusedWithPort(t *testing.T) {
	first, err := pebbleca.Start(t.Context(), pebbleca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	client := &acme.Client{Directory: first.DirectoryURL(), HTTPClient: first.HTTPClient()}
	if dir, err := client.GetDirectory(t.Context()); err != nil || !hasProfile(dir, pebbleca.DefaultProfile) {
		t.Fatalf("first CA's directory: %+v, %v", dir.Meta, err)
	}
	first.Close()
	addr := strings.TrimPrefix(first.APIURL(""), "https://")

	second, err := pebbleca.Start(t.Context(), pebbleca.WithAPIAddr(pebbleca.Config{
		Profiles: map[string]pebbleca.Profile{"short": {Description: "20 s", ValidityPeriod: 20 * time.Second}},
	}, addr))
	if err != nil {
		t.Fatalf("start a CA on the first one's port %s: %v", addr, err)
	}
	t.Cleanup(func() { second.Close() })
	if second.DirectoryURL() == first.DirectoryURL() {
		t.Errorf("both CAs have the directory URL %s", second.DirectoryURL())
	}
	client = &acme.Client{Directory: second.DirectoryURL(), HTTPClient: second.HTTPClient()}
	dir, err := client.GetDirectory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !hasProfile(dir, "short") || hasProfile(dir, pebbleca.DefaultProfile) {
		t.Errorf("second CA's directory offers %v, want only its own profile short", dir.Meta)
	}
	// The URLs the directory lists, without the prefix, still work.
	if dir.NewNonce == "" {
		t.Fatal("no newNonce in the directory")
	}
	resp, err := second.HTTPClient().Head(dir.NewNonce)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Replay-Nonce") == "" {
		t.Errorf("HEAD %s: %s, no nonce", dir.NewNonce, resp.Status)
	}
}

func hasProfile(dir acme.Directory, name string) bool {
	if dir.Meta == nil {
		return false
	}
	_, ok := dir.Meta.Profiles[name]
	return ok
}
