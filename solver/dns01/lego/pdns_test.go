package lego_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/internal/porttest"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/lego"
)

func TestMain(m *testing.M) {
	// Pebble reads its knobs in its constructors; t.Setenv would rule out
	// t.Parallel.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Exit(m.Run())
}

// findPDNS returns the path of PowerDNS Authoritative's pdns_server,
// skipping the test when it is missing locally and failing it in CI
// (.ci/install-pdns.sh installs it).
func findPDNS(t *testing.T) (server, schema string) {
	t.Helper()
	schema = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"
	for _, p := range []string{"pdns_server", "/usr/sbin/pdns_server"} {
		if path, err := exec.LookPath(p); err == nil {
			if _, err := os.Stat(schema); err == nil {
				return path, schema
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("PowerDNS (pdns_server with the sqlite3 backend) is not installed, but CI is set: run .ci/install-pdns.sh")
	}
	t.Skip("SKIPPED: PowerDNS Authoritative is not installed; run .ci/install-pdns.sh (apt-get install pdns-server pdns-backend-sqlite3) to run the lego/PowerDNS end-to-end test")
	return "", ""
}

// freePort returns a loopback port free for both TCP and UDP (PowerDNS
// listens on both), reserved for t.
func freePort(t *testing.T) int { return porttest.Free(t) }

// powerDNS is a running pdns_server with the sqlite3 backend and its
// HTTP API, on loopback ports.
type powerDNS struct {
	dnsAddr string // "127.0.0.1:port"
	dnsPort string
	apiURL  string
	apiKey  string
}

// startPowerDNS runs pdns_server in the foreground with zones example.test
// and delegate.test (nameserver ns1.example.test = 127.0.0.1), and the
// delegation _acme-challenge.app.example.test CNAME app.delegate.test.
// PowerDNS answers a CNAME into another zone it serves with the target's
// records too, so Pebble's validator, which does not chase CNAMEs, sees the
// delegated value as a recursive resolver would show it.
func startPowerDNS(t *testing.T) *powerDNS {
	t.Helper()
	server, schema := findPDNS(t)
	dir := t.TempDir()
	ddl, err := os.ReadFile(schema)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "pdns.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(ddl)); err != nil {
		t.Fatalf("create the PowerDNS schema: %v", err)
	}
	db.Close()
	key := make([]byte, 16)
	rand.Read(key)
	p := &powerDNS{apiKey: hex.EncodeToString(key)}
	dnsPort, apiPort := freePort(t), freePort(t)
	p.dnsPort = fmt.Sprint(dnsPort)
	p.dnsAddr = net.JoinHostPort("127.0.0.1", p.dnsPort)
	p.apiURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	conf := fmt.Sprintf(`launch=gsqlite3
gsqlite3-database=%[1]s/pdns.sqlite3
local-address=127.0.0.1
local-port=%[2]d
webserver=yes
webserver-address=127.0.0.1
webserver-port=%[3]d
webserver-allow-from=127.0.0.0/8
api=yes
api-key=%[4]s
daemon=no
guardian=no
socket-dir=%[1]s
disable-syslog=yes
`, dir, dnsPort, apiPort, p.apiKey)
	if err := os.WriteFile(filepath.Join(dir, "pdns.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(server, "--config-dir="+dir)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pdns_server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pdns_server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := p.api(t, http.MethodGet, "/api/v1/servers/localhost", nil); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pdns_server's API did not answer at %s within 20 s:\n%s", p.apiURL, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	rr := func(name, typ, content string) map[string]any {
		return map[string]any{"name": name, "type": typ, "ttl": 60, "changetype": "REPLACE",
			"records": []map[string]any{{"content": content, "disabled": false}}}
	}
	for _, z := range []map[string]any{
		{"name": "example.test.", "kind": "Native", "nameservers": []string{"ns1.example.test."}, "rrsets": []any{
			rr("ns1.example.test.", "A", "127.0.0.1"),
			rr("_acme-challenge.app.example.test.", "CNAME", "app.delegate.test."),
		}},
		{"name": "delegate.test.", "kind": "Native", "nameservers": []string{"ns1.example.test."}},
	} {
		if code, body := p.api(t, http.MethodPost, "/api/v1/servers/localhost/zones", z); code != http.StatusCreated {
			t.Fatalf("create zone %s: %d %s", z["name"], code, body)
		}
	}
	return p
}

// api calls PowerDNS's API with the right key.
func (p *powerDNS) api(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.apiURL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", p.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// txtSets returns the TXT record sets of a zone, by name, through the API.
func (p *powerDNS) txtSets(t *testing.T, zone string) map[string][]string {
	t.Helper()
	code, body := p.api(t, http.MethodGet, "/api/v1/servers/localhost/zones/"+zone, nil)
	if code != http.StatusOK {
		t.Fatalf("get zone %s: %d %s", zone, code, body)
	}
	var z struct {
		RRSets []struct {
			Name, Type string
			Records    []struct{ Content string }
		}
	}
	if err := json.Unmarshal([]byte(body), &z); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, s := range z.RRSets {
		if s.Type != "TXT" {
			continue
		}
		for _, r := range s.Records {
			out[s.Name] = append(out[s.Name], r.Content)
		}
	}
	return out
}

// pdnsEnv is PowerDNS, a Pebble whose validator asks it, and the resolver
// certfleet uses.
type pdnsEnv struct {
	pdns     *powerDNS
	ca       *pebbleca.CA
	resolver *dns01.Resolver
}

func newPDNSEnv(t *testing.T) *pdnsEnv {
	t.Helper()
	p := startPowerDNS(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{ResolverAddr: p.dnsAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	return &pdnsEnv{pdns: p, ca: ca,
		resolver: &dns01.Resolver{Nameservers: []string{p.dnsAddr}, AuthPort: p.dnsPort, Timeout: 2 * time.Second}}
}

// provider builds the provider from a configuration file, as the daemon
// does: parsed and validated by package config, built by lego.New.
func (e *pdnsEnv) provider(t *testing.T, apiKey string) *lego.Provider {
	t.Helper()
	src := fmt.Sprintf(`[ca]
directory = "https://ca.example/dir"
[dns01.providers.pdns]
type = "powerdns"
api_url = %q
api_key = %q
ttl = 60
`, e.pdns.apiURL, apiKey)
	cfg, err := config.Parse("certfleet.toml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p := cfg.DNS01.Providers["pdns"]
	prov, err := lego.New(lego.Settings{Name: p.Name, Type: p.Type, Keys: p.Keys, Resolver: e.resolver})
	if err != nil {
		t.Fatal(err)
	}
	return prov
}

func (e *pdnsEnv) solver(p dns01.Provider, journal string) *dns01.Solver {
	return &dns01.Solver{
		Providers:          map[string]dns01.Provider{"pdns": p},
		DefaultProvider:    "pdns",
		Resolver:           e.resolver,
		PropagationTimeout: 20 * time.Second,
		PollInterval:       50 * time.Millisecond,
		MaxPollInterval:    200 * time.Millisecond,
		Journal:            journal,
	}
}

// issue runs the preflight and, if it passes, an order, as the daemon's
// issuer does (cmd/certfleet withDNSPreflight).
func (e *pdnsEnv) issue(t *testing.T, s *dns01.Solver, names ...string) error {
	t.Helper()
	ids, err := certfleet.ParseIdentifiers(names)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := s.Preflight(ctx, ids); err != nil {
		return fmt.Errorf("dns-01 preflight failed, no order placed: %w", err)
	}
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: e.ca.DirectoryURL(),
		HTTPClient:   e.ca.HTTPClient(),
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeDNS01: s},
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res, err := iss.Issue(ctx, certfleet.IssueRequest{
		Spec: certfleet.CertificateSpec{Name: "t", Identifiers: ids, KeyTypes: []certfleet.KeyType{certfleet.ECDSAP256},
			Challenge: certfleet.ChallengeDNS01},
		KeyType: certfleet.ECDSAP256, Key: key,
	})
	if err == nil && len(res.ChainPEM) == 0 {
		return errors.New("no chain")
	}
	return err
}

// TestPowerDNSEndToEnd issues through lego's PowerDNS provider against a
// real PowerDNS Authoritative: certfleet resolves the delegation and zone,
// lego writes through the HTTP API, certfleet checks propagation at the
// zone's nameserver, Pebble validates through PowerDNS.
func TestPowerDNSEndToEnd(t *testing.T) {
	e := newPDNSEnv(t)
	prov := e.provider(t, e.pdns.apiKey)
	for _, tc := range []struct {
		name  string
		names []string
	}{
		{"plain", []string{"www.example.test"}},
		// Two values under _acme-challenge.example.test at once.
		{"wildcard and apex", []string{"*.example.test", "example.test"}},
		// The record goes to app.delegate.test, which does not start
		// with _acme-challenge: only certfleet's resolution can put it
		// there, lego's own lookups would not even find the zone.
		{"CNAME delegated", []string{"app.example.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.issue(t, e.solver(prov, ""), tc.names...); err != nil {
				t.Fatalf("issue %v: %v", tc.names, err)
			}
			for _, zone := range []string{"example.test.", "delegate.test."} {
				if got := e.pdns.txtSets(t, zone); len(got) != 0 {
					t.Errorf("TXT records left in %s: %v", zone, got)
				}
			}
		})
	}
}

// TestPowerDNSWrongKey: a wrong API key fails the preflight, places no
// order, and the error says why.
func TestPowerDNSWrongKey(t *testing.T) {
	e := newPDNSEnv(t)
	prov := e.provider(t, "wrong-"+e.pdns.apiKey)
	before := e.ca.NewOrders()
	err := e.issue(t, e.solver(prov, ""), "www.example.test")
	if err == nil {
		t.Fatal("issued with a wrong API key")
	}
	for _, want := range []string{"no order placed", "dns-01 provider pdns cannot update zone example.test.", "401"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), e.pdns.apiKey) {
		t.Errorf("error %q shows the API key", err)
	}
	if got := e.ca.NewOrders(); got != before {
		t.Errorf("a wrong API key cost %d orders", got-before)
	}
}

// TestPowerDNSJournalAfterCrash: records presented by a process that died
// before cleaning up are removed by the next one, through a new provider
// (nothing in memory), from the journal alone.
func TestPowerDNSJournalAfterCrash(t *testing.T) {
	e := newPDNSEnv(t)
	journal := filepath.Join(t.TempDir(), "dns01-journal.json")
	crashed := e.solver(e.provider(t, e.pdns.apiKey), journal)
	ctx := t.Context()
	var values []string
	for i, name := range []string{"*.example.test", "example.test", "app.example.test"} {
		ka := fmt.Sprintf("token%d.thumbprint", i)
		id, err := certfleet.ParseIdentifier(name)
		if err != nil {
			t.Fatal(err)
		}
		chal := certfleet.Challenge{Type: certfleet.ChallengeDNS01, Identifier: id,
			KeyAuthorization: ka, URL: fmt.Sprintf("https://ca.example/chal/%d", i)}
		if err := crashed.Present(ctx, chal); err != nil {
			t.Fatalf("present %s: %v", name, err)
		}
		values = append(values, `"`+dns01.RecordValue(ka)+`"`)
	}
	got := e.pdns.txtSets(t, "example.test.")["_acme-challenge.example.test."]
	if len(got) != 2 {
		t.Fatalf("TXT at _acme-challenge.example.test. = %v, want the wildcard's and the apex's values", got)
	}
	if got := e.pdns.txtSets(t, "delegate.test.")["app.delegate.test."]; len(got) != 1 || got[0] != values[2] {
		t.Fatalf("TXT at app.delegate.test. = %v, want %v", got, values[2])
	}
	// The "crash": crashed is dropped without CleanUp.
	next := e.solver(e.provider(t, e.pdns.apiKey), journal)
	if err := next.CleanupJournal(ctx); err != nil {
		t.Fatalf("cleanup from the journal: %v", err)
	}
	for _, zone := range []string{"example.test.", "delegate.test."} {
		if got := e.pdns.txtSets(t, zone); len(got) != 0 {
			t.Errorf("TXT records left in %s after the journal's cleanup: %v", zone, got)
		}
	}
	// The journal is empty: a second run does nothing and succeeds.
	if err := e.solver(e.provider(t, e.pdns.apiKey), journal).CleanupJournal(ctx); err != nil {
		t.Errorf("second cleanup: %v", err)
	}
	// And a record that is not there cleans up without error.
	rec := dns01.Record{Domain: "gone.example.test", FQDN: "_acme-challenge.gone.example.test.", Zone: "example.test.",
		KeyAuthorization: "x.y", Value: dns01.RecordValue("x.y")}
	if err := e.provider(t, e.pdns.apiKey).CleanUp(ctx, rec); err != nil {
		t.Errorf("clean up a missing record: %v", err)
	}
}
