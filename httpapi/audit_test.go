package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// auditRequest sends one request to h as secret and returns the recorder.
func auditRequest(t *testing.T, h http.Handler, secret, method, path, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body)) // RemoteAddr 192.0.2.1:1234
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func newTestCSR(t *testing.T, names ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestAuditOfAPIChanges: requests that change something are in the audit
// trail with the token and the client's address; requests that change
// nothing (a repeated PUT, an agent's unchanged check-in) are not.
func TestAuditOfAPIChanges(t *testing.T) {
	srv, admin := newBareServer(t)
	srv.Events = srv.Store
	h := srv.Handler()
	ctx := t.Context()
	tokens, err := srv.Store.Tokens(ctx)
	if err != nil || len(tokens) != 1 {
		t.Fatal(tokens, err)
	}
	adminActor := "token:" + tokens[0].ID
	step := func(method, path, ctype, body string, status int) {
		t.Helper()
		if rec := auditRequest(t, h, admin, method, path, ctype, body); rec.Code != status {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, rec.Code, status, rec.Body)
		}
	}
	kinds := func() []string {
		t.Helper()
		evs, err := srv.Store.Events(ctx, certfleet.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := len(evs) - 1; i >= 0; i-- { // oldest first, to read along
			e := evs[i]
			out = append(out, e.Kind+" "+e.Certificate+" "+e.Reason)
			if e.Remote != "192.0.2.1:1234" {
				t.Errorf("event %+v: remote %q, want the client's address", e, e.Remote)
			}
			if want := adminActor; e.Kind != certfleet.EventDeployed && e.Kind != certfleet.EventDeployFailed && e.Actor != want {
				t.Errorf("event %+v: actor %q, want %q", e, e.Actor, want)
			}
		}
		return out
	}

	step("PUT", "/v1/names/a.example.org", "", "", http.StatusAccepted)
	step("PUT", "/v1/names/a.example.org", "", "", http.StatusAccepted) // unchanged
	step("POST", "/v1/names/b.example.org/csr", "application/pkcs10", newTestCSR(t, "b.example.org"), http.StatusAccepted)
	step("POST", "/v1/names/a.example.org/retry", "", "", http.StatusAccepted)
	report := func(fp, errText string) {
		t.Helper()
		b, _ := json.Marshal(ReportRequest{Name: "a.example.org", Serial: "0" + fp, Fingerprint: fp, Error: errText,
			NotAfter: time.Now().Add(time.Hour), InstalledAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
		step("POST", "/v1/agents/lb1/report", "application/json", string(b), http.StatusNoContent)
	}
	report("f1", "")             // installed: deployed
	report("f1", "")             // a check-in: nothing
	report("f1", "reload: boom") // an error: deploy_failed
	report("f1", "reload: boom") // the same error again: nothing
	report("f2", "")             // a new certificate: deployed
	step("DELETE", "/v1/names/a.example.org", "", "", http.StatusNoContent)

	want := []string{
		"spec_changed a.example.org requested",
		"spec_changed b.example.org csr",
		"retry a.example.org ",
		"deployed a.example.org ",
		"deploy_failed a.example.org agent_error",
		"deployed a.example.org ",
		"spec_changed a.example.org withdrawn",
	}
	if got := kinds(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events:\n %q\nwant\n %q", got, want)
	}
	agentEvs, err := srv.Store.Events(ctx, certfleet.EventFilter{Actor: "agent:lb1"})
	if err != nil || len(agentEvs) != 3 {
		t.Fatalf("agent:lb1 events: %+v, %v", agentEvs, err)
	}
	if e := agentEvs[1]; e.Serial != "0f1" || e.KeyType != certfleet.ECDSAP256 || !strings.Contains(e.Detail, "reload: boom") ||
		!strings.Contains(e.Detail, "token "+tokens[0].ID) {
		t.Errorf("deploy_failed event %+v: want serial, key type, the error and the token", e)
	}
}

// TestAuditEndpoint: GET /v1/audit is for admin tokens; filters and paging
// work; a bad parameter is a 400 naming it.
func TestAuditEndpoint(t *testing.T) {
	srv, admin := newBareServer(t)
	h := srv.Handler()
	ctx := t.Context()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range 5 {
		e := certfleet.Event{At: base.Add(time.Duration(i) * time.Minute), Kind: certfleet.EventKeyRead, Actor: "token:tok_x",
			Certificate: []string{"web", "mail"}[i%2], Detail: string(rune('a' + i))}
		if err := srv.Store.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	id, reader, hash := certfleet.NewTokenSecret()
	if err := srv.Store.CreateToken(ctx, certfleet.Token{ID: id, Names: []string{"*"}, Hash: hash, CreatedAt: time.Now(),
		Permissions: []certfleet.Permission{certfleet.PermReadKeys, certfleet.PermRequestNames}}); err != nil {
		t.Fatal(err)
	}
	get := func(secret, query string) (*httptest.ResponseRecorder, AuditPage) {
		t.Helper()
		rec := auditRequest(t, h, secret, "GET", "/v1/audit"+query, "", "")
		var page AuditPage
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatal(err)
			}
		}
		return rec, page
	}
	details := func(p AuditPage) string {
		var s string
		for _, e := range p.Events {
			s += e.Detail
		}
		return s
	}
	if rec, page := get(admin, ""); rec.Code != 200 || details(page) != "edcba" || page.Next != "" {
		t.Fatalf("all: %d %s", rec.Code, rec.Body)
	}
	if _, page := get(admin, "?certificate=web"); details(page) != "eca" {
		t.Errorf("certificate=web: %q", details(page))
	}
	if _, page := get(admin, "?actor=token:&kind=key_read&since="+base.Add(90*time.Second).Format(time.RFC3339)); details(page) != "edc" {
		t.Errorf("actor prefix, kind, since: %q", details(page))
	}
	if _, page := get(admin, "?until=30m"); details(page) != "edcba" {
		t.Errorf("until=30m (an age): %q", details(page))
	}
	// Paging follows next.
	_, page := get(admin, "?limit=2&since=2h")
	var all string
	for pages := 0; ; pages++ {
		all += details(page)
		if page.Next == "" || pages > 5 {
			break
		}
		_, page = get(admin, strings.TrimPrefix(page.Next, "/v1/audit"))
	}
	if all != "edcba" {
		t.Errorf("paged by next: %q, want edcba", all)
	}
	if rec, _ := get(admin, "?before_id=3"); !strings.Contains(rec.Body.String(), `"detail": "b"`) || strings.Contains(rec.Body.String(), `"detail": "c"`) {
		t.Errorf("before_id=3: %s", rec.Body)
	}

	// Not for non-admins, nor anonymous callers.
	if rec, _ := get(reader, ""); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin") ||
		rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("non-admin: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := get("", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d", rec.Code)
	}

	for _, tc := range []struct{ query, want string }{
		{"?since=yesterday", "since"},
		{"?until=-1h", "until"},
		{"?since=1h&until=2h", "until"},
		{"?limit=0", "limit"},
		{"?limit=5000", "limit"},
		{"?before_id=x", "before_id"},
		{"?before_id=999999", "before_id 999999: no such event"},
		{"?kind=Key-Read", "kind"},
		{"?actor=root", "actor"},
		{"?certficate=web", `certficate`},
	} {
		rec, _ := get(admin, tc.query)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %s; want 400 naming %q", tc.query, rec.Code, rec.Body, tc.want)
		}
	}
}
