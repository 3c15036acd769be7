package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/pgtest"
)

// mustToken creates a token with the CLI and returns its ID and secret.
func mustToken(t *testing.T, cfgPath, perms string) (id, secret string) {
	t.Helper()
	code, out, errOut := runCLI(t, "token", "create", "-config", cfgPath, "-names", "*.certfleet.test", "-permissions", perms, "-description", perms+" test")
	m := regexp.MustCompile(`token (tok_[0-9a-f]+) created`).FindStringSubmatch(errOut)
	if code != 0 || m == nil {
		t.Fatalf("token create %s: exit %d\n%s%s", perms, code, out, errOut)
	}
	return m[1], strings.TrimSpace(out)
}

// auditJSON runs certfleet audit --json with args and decodes the events.
func auditJSON(t *testing.T, cfgPath string, args ...string) []certfleet.Event {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"audit", "-config", cfgPath, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("audit %v: exit %d\n%s%s", args, code, out, errOut)
	}
	var evs []certfleet.Event
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("audit %v --json: %v\n%s", args, err, out)
	}
	return evs
}

func findEvent(evs []certfleet.Event, kind string) *certfleet.Event {
	for i := range evs {
		if evs[i].Kind == kind {
			return &evs[i]
		}
	}
	return nil
}

// TestAuditTrailAgainstPebble drives the audit trail with real failures and
// real issuance: an http-01 validation that fails because the responder is
// unreachable (order_failed with a reason), a retry over the API, the
// issuance (issued), a private key read over the API (key_read with the
// token and the client's address), and token creation with the CLI; then
// reads them back with `certfleet audit --json` and GET /v1/audit, which an
// admin may read and a non-admin may not.
func TestAuditTrailAgainstPebble(t *testing.T) {
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	// self_test = false: the failure must reach the CA (the self-test
	// before the order would hold the name back instead, issue 14).
	path := daemontest.WriteConfig(t, dir, ca, port, "[api]\nlisten = \"127.0.0.1:0\"\n"+
		"[[certificate]]\nname = \"web\"\nidentifiers = [\"web.certfleet.test\"]\nself_test = false\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	adminID, adminSecret := mustToken(t, path, "admin")
	readerID, readerSecret := mustToken(t, path, "read-keys,request-names")

	// 1. The http-01 responder listens elsewhere than where Pebble
	// connects: validation fails for real.
	elsewhere := issuetest.Listen(t)
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true, HTTP01Listener: elsewhere})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.IssueOnce(t.Context())
	if err != nil || rep.Failed != 1 {
		t.Fatalf("first pass with the responder unreachable: %+v, %v; want 1 failed", rep.Results, err)
	}
	d.Close()

	// 2. The responder where Pebble connects; an operator asks for a
	// retry over the API (the failure backs off a minute otherwise).
	d, err = daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reader := &httpapi.Client{BaseURL: "http://" + addr, Token: readerSecret}
	if _, err := reader.Retry(t.Context(), "web.certfleet.test"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if rep, err := d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("second pass: %+v, %v; want 1 issued", rep.Results, err)
	}
	key, err := reader.Fetch(t.Context(), "web.certfleet.test", "privkey", httpapi.FetchOptions{})
	if err != nil || !strings.Contains(string(key.Data), "PRIVATE KEY") {
		t.Fatalf("privkey: %v", err)
	}

	// 3. certfleet audit --certificate web --json.
	evs := auditJSON(t, path, "--certificate", "web")
	for i := 1; i < len(evs); i++ {
		if evs[i].At.After(evs[i-1].At) {
			t.Errorf("events not newest first: %v after %v", evs[i].At, evs[i-1].At)
		}
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
		if e.Certificate != "web" {
			t.Errorf("--certificate web listed %+v", e)
		}
		if strings.Contains(e.Detail, "PRIVATE KEY") || strings.Contains(e.Detail, readerSecret) || strings.Contains(e.Detail, adminSecret) {
			t.Errorf("an event holds a secret: %+v", e)
		}
	}
	want := []string{certfleet.EventKeyRead, certfleet.EventDeployed, certfleet.EventIssued, certfleet.EventRetry, certfleet.EventOrderFailed, certfleet.EventConfigChanged}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("events of web: %v, want %v", kinds, want)
	}
	if e := findEvent(evs, certfleet.EventOrderFailed); e == nil || e.Reason == "" || !strings.Contains(e.Detail, "web.certfleet.test") ||
		!strings.HasPrefix(e.Actor, "instance:") || e.KeyType != certfleet.ECDSAP256 {
		t.Errorf("order_failed event %+v: want the scheduler as actor, a reason and the error naming the identifier", e)
	} else {
		t.Logf("order_failed: reason %q, detail %q", e.Reason, e.Detail)
	}
	job, err := d.Store.Job(t.Context(), certfleet.JobKey{Spec: "web", KeyType: certfleet.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := d.Store.Issuance(t.Context(), job.CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	if e := findEvent(evs, certfleet.EventIssued); e == nil || e.Serial != certfleet.FormatSerial(iss.Serial) || e.IssuanceID != iss.ID || !strings.HasPrefix(e.Actor, "instance:") {
		t.Errorf("issued event %+v, want serial %s, issuance %d", e, iss.Serial, iss.ID)
	}
	if e := findEvent(evs, certfleet.EventKeyRead); e == nil || e.Actor != "token:"+readerID || !strings.HasPrefix(e.Remote, "127.0.0.1:") ||
		e.Serial != certfleet.FormatSerial(iss.Serial) || e.IssuanceID != iss.ID {
		t.Errorf("key_read event %+v, want actor token:%s from 127.0.0.1, serial %s", e, readerID, iss.Serial)
	}
	if e := findEvent(evs, certfleet.EventRetry); e == nil || e.Actor != "token:"+readerID || !strings.HasPrefix(e.Remote, "127.0.0.1:") {
		t.Errorf("retry event %+v, want actor token:%s from 127.0.0.1", e, readerID)
	}
	abs, _ := filepath.Abs(path)
	if e := findEvent(evs, certfleet.EventConfigChanged); e == nil || e.Actor != "config:"+abs || e.Reason != "added" || !strings.Contains(e.Detail, "1 added") {
		t.Errorf("config_changed event %+v, want actor config:%s, reason added and the sync summary", e, abs)
	}

	// Other filters: token changes by the operator, key reads by prefix.
	tokens := auditJSON(t, path, "--kind", certfleet.EventTokenCreated)
	if len(tokens) != 2 || !strings.HasPrefix(tokens[0].Actor, "cli:") || !strings.Contains(tokens[0].Detail, readerID) ||
		!strings.Contains(tokens[1].Detail, adminID) || strings.Contains(tokens[0].Detail, "cft_") {
		t.Errorf("token_created events: %+v", tokens)
	}
	if reads := auditJSON(t, path, "--actor", "token:", "--since", "1h", "--kind", "key_read"); len(reads) != 1 {
		t.Errorf("--actor token: --kind key_read --since 1h: %+v, want the one key read", reads)
	}
	if none := auditJSON(t, path, "--certificate", "web", "--until", "2020-01-01"); len(none) != 0 {
		t.Errorf("--until 2020-01-01: %+v, want none", none)
	}
	code, out, errOut := runCLI(t, "audit", "-config", path, "--limit", "2")
	if testing.Verbose() {
		_, all, _ := runCLI(t, "audit", "-config", path)
		t.Logf("certfleet audit:\n%s", all)
	}
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "KIND") || !strings.Contains(out, "key_read") ||
		!strings.Contains(errOut, "--before-id") {
		t.Errorf("audit table with --limit 2: exit %d\n%s%s", code, out, errOut)
	}

	// 4. GET /v1/audit: admins see the trail, a non-admin gets a 403.
	admin := &httpapi.Client{BaseURL: "http://" + addr, Token: adminSecret}
	page, err := admin.Audit(t.Context(), certfleet.EventFilter{Certificate: "web", Limit: 3})
	if err != nil || len(page.Events) != 3 || page.Events[0].Kind != certfleet.EventKeyRead || page.Next == "" {
		t.Fatalf("admin GET /v1/audit: %+v, %v", page, err)
	}
	rest, err := admin.Audit(t.Context(), certfleet.EventFilter{Certificate: "web", Limit: 10, BeforeID: page.Events[2].ID})
	if err != nil || len(rest.Events) != len(evs)-3 || rest.Next != "" {
		t.Fatalf("second page: %+v, %v; want the %d older events", rest, err, len(evs)-3)
	}
	_, err = reader.Audit(t.Context(), certfleet.EventFilter{})
	var prob *httpapi.Problem
	if !errors.As(err, &prob) || prob.Status != http.StatusForbidden || !strings.Contains(prob.Detail, "admin") {
		t.Errorf("non-admin GET /v1/audit: %v, want a 403 problem naming the admin permission", err)
	}
}

// TestAuditCommandBadFlags: bad filters are usage errors (exit 2) that say
// what is wrong, before the store is opened.
func TestAuditCommandBadFlags(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(cfgPath, []byte("state = \"certfleet.db\"\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, `--since: time "yesterday"`},
		{[]string{"--until", "-3h"}, "must not be negative"},
		{[]string{"--since", "1h", "--until", "2h"}, "must be after --since"},
		{[]string{"--limit", "0"}, "--limit 0"},
		{[]string{"--limit", "100000"}, "--limit 100000"},
		{[]string{"--kind", "Issued"}, "--kind"},
		{[]string{"--actor", "root"}, `--actor "root": give TYPE:NAME`},
		{[]string{"--before-id", "-4"}, "--before-id"},
		{[]string{"--limit", "many"}, "invalid value"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		code, _, errOut := runCLI(t, append([]string{"audit", "-config", cfgPath}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("audit %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if code, _, errOut := runCLI(t, "audit", "--since", "1h"); code != 2 || !strings.Contains(errOut, "-config") {
		t.Errorf("audit without -config: exit %d, %q", code, errOut)
	}
	// A well-formed kind certfleet does not record works, with a note.
	code, out, errOut := runCLI(t, "audit", "-config", cfgPath, "--kind", "no_such_kind")
	if code != 0 || !strings.Contains(errOut, "note:") || !strings.Contains(out, "(no events match)") {
		t.Errorf("unknown kind: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuditCommandOnPostgres: certfleet audit reads the trail of a
// PostgreSQL store as it does SQLite's.
func TestAuditCommandOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "certfleet.toml")
	cfg := fmt.Sprintf("state = %q\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n"+
		"[[certificate]]\nname = \"pg\"\nidentifiers = [\"pg.example.org\"]\n", dsn)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), c, daemon.Options{}) // the sync records config_changed
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	mustToken(t, cfgPath, "read-certs")
	evs := auditJSON(t, cfgPath, "--certificate", "pg")
	if len(evs) != 1 || evs[0].Kind != certfleet.EventConfigChanged || evs[0].Reason != "added" {
		t.Errorf("audit --certificate pg on PostgreSQL: %+v", evs)
	}
	if evs := auditJSON(t, cfgPath, "--actor", "cli:"); len(evs) != 1 || evs[0].Kind != certfleet.EventTokenCreated {
		t.Errorf("audit --actor cli: on PostgreSQL: %+v", evs)
	}
}

// TestAuditTokenRevoke: certfleet token revoke records token_revoked by the
// operator, naming the token (never its secret); revoking it again says so.
func TestAuditTokenRevoke(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(cfgPath, []byte("state = \"certfleet.db\"\n[ca]\ndirectory = \"https://ca.invalid/dir\"\n[http01]\nlisten = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, secret := mustToken(t, cfgPath, "read-certs")
	for range 2 {
		if code, out, errOut := runCLI(t, "token", "revoke", "-config", cfgPath, id); code != 0 {
			t.Fatalf("token revoke: exit %d\n%s%s", code, out, errOut)
		}
	}
	evs := auditJSON(t, cfgPath, "--kind", certfleet.EventTokenRevoked)
	if len(evs) != 2 {
		t.Fatalf("token_revoked events: %+v, want 2", evs)
	}
	for i, e := range evs {
		if e.Actor != daemon.Operator() || e.Remote != daemon.Host() || !strings.HasPrefix(e.Detail, id+": names *.certfleet.test") ||
			strings.Contains(e.Detail, secret) || strings.Contains(e.Detail, "already revoked") != (i == 0) {
			t.Errorf("token_revoked event %d: %+v", i, e)
		}
	}
	if code, _, errOut := runCLI(t, "token", "revoke", "-config", cfgPath, "tok_000000000000"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("revoking an unknown token: exit %d, %q", code, errOut)
	}
	if evs := auditJSON(t, cfgPath, "--kind", certfleet.EventTokenRevoked); len(evs) != 2 {
		t.Errorf("a failed revoke was recorded: %+v", evs)
	}
}
