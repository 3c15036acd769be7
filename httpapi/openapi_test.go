package httpapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlite"
)

type openAPIDocument struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Summary    string `json:"summary"`
		Security   *[]any `json:"security"`
		Parameters []struct {
			Name     string `json:"name"`
			In       string `json:"in"`
			Required bool   `json:"required"`
		} `json:"parameters"`
		Responses map[string]any `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Required   []string       `json:"required"`
			Properties map[string]any `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// TestOpenAPI keeps GET /v1/openapi.json true: its operations are exactly
// the routes table's; every path parameter of a route is declared; public
// routes need no credentials and the others document 401 and 403; and the
// JSON schemas list exactly the fields the Go types send.
func TestOpenAPI(t *testing.T) {
	var doc openAPIDocument
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		routed[key] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s is not in openapi.json", key)
			continue
		}
		for _, seg := range strings.Split(rt.path, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				name = strings.TrimSuffix(name, "}")
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Name     string `json:"name"`
					In       string `json:"in"`
					Required bool   `json:"required"`
				}) bool {
					return p.Name == name && p.In == "path" && p.Required
				}) {
					t.Errorf("%s: path parameter %q not declared as required", key, name)
				}
			}
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != rt.public {
			t.Errorf("%s: documented public=%v, routed public=%v", key, public, rt.public)
		}
		if !rt.public {
			for _, code := range []string{"401", "403"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s: response %s not documented", key, code)
				}
			}
		}
	}
	for k := range documented {
		if !routed[k] {
			t.Errorf("openapi.json documents %s, which is not routed", k)
		}
	}

	// Schemas: the properties are the JSON fields of the Go types.
	for name, v := range map[string]any{
		"NameStatus": NameStatus{}, "KeyStatus": KeyStatus{}, "NameRequest": NameRequest{},
		"CertificateInfo": CertificateInfo{}, "CertificateList": CertificateList{}, "Problem": Problem{},
		"ReportRequest": ReportRequest{}, "FleetEntry": FleetEntry{}, "AgentCommand": certfleet.AgentCommand{},
		"AuditPage": AuditPage{}, "Event": certfleet.Event{},
		"Tenant": certfleet.Tenant{}, "TenantRequest": TenantRequest{}, "TenantUpdate": TenantUpdate{},
		"TenantInfo": TenantInfo{}, "TenantList": TenantList{}, "TenantUsage": certfleet.TenantUsage{},
		"TenantDeletion": certfleet.TenantDeletion{}, "Token": certfleet.Token{}, "TokenCreated": TokenCreated{},
		"TokenList": TokenList{}, "TokenRequest": TokenRequest{}, "AccountRequest": AccountRequest{},
		"AccountInfo": AccountInfo{}, "AccountList": AccountList{},
		"IdentityRequest": IdentityRequest{Name: "x"}, "IdentityIssued": IdentityIssued{Tenant: "x"},
		"WaitingStatus": WaitingStatus{},
	} {
		sc, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		got := slices.Sorted(maps.Keys(sc.Properties))
		want := jsonFields(v)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s properties %v, Go type sends %v", name, got, want)
		}
	}
}

// jsonFields lists the JSON member names of a struct value.
func jsonFields(v any) []string {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	// Members left out when empty are listed by a filled value's tags.
	full := map[string]any{}
	for k := range m {
		full[k] = true
	}
	switch v.(type) {
	case NameStatus:
		full["fleet"], full["waiting"] = true, true
		full["renew_before"], full["renew_after"] = true, true
	case CertificateInfo:
		full["renew_before"], full["renew_after"] = true, true
	case ReportRequest:
		for _, k := range []string{"key_type", "serial", "fingerprint", "not_after", "installed_at", "commands", "error"} {
			full[k] = true
		}
	case FleetEntry:
		for _, k := range []string{"serial", "fingerprint", "installed_at", "commands", "error", "identity"} {
			full[k] = true
		}
	case certfleet.AgentCommand:
		full["error"] = true
	case KeyStatus:
		for _, k := range []string{"serial", "not_after", "next_check", "last_error", "last_error_at", "deferred", "deferred_until", "recent_attempts",
			"deploy_error", "deploy_failures", "deploy_failed_at", "deploy_next_at"} {
			full[k] = true
		}
	case NameRequest:
		for _, k := range []string{"identifiers", "key_types", "challenge", "dns_provider", "webroot", "profile", "renew_before",
			"renew_after", "reuse_key", "account", "tenant", "group", "csr", "self_test"} {
			full[k] = true
		}
	case certfleet.Tenant, TenantInfo, TenantRequest, TenantUpdate:
		for _, k := range []string{"description", "names", "account", "max_names", "orders_per_week"} {
			full[k] = true
		}
		if _, ok := v.(TenantUpdate); !ok {
			full["names"] = true
		}
		if _, ok := v.(TenantRequest); !ok {
			if _, ok := v.(TenantUpdate); !ok {
				full["created_at"], full["updated_at"] = true, true
			}
		}
	case certfleet.TenantDeletion:
		full["withdrawn"], full["tokens_revoked"] = true, true
	case certfleet.Token, TokenCreated:
		for _, k := range []string{"url_credential", "tenant", "revoked_at"} {
			full[k] = true
		}
	case TokenRequest:
		for _, k := range []string{"description", "names", "url_credential"} {
			full[k] = true
		}
	case AccountRequest, AccountInfo:
		for _, k := range []string{"email", "eab_key_id", "trusted_roots"} {
			full[k] = true
		}
		if _, ok := v.(AccountRequest); ok {
			full["eab_hmac_key"] = true
		}
	case CertificateList:
		full["next"] = true
	case Problem:
		full["detail"], full["instance"] = true, true
	case AuditPage:
		full["next"] = true
	case certfleet.Event:
		for _, k := range []string{"id", "remote", "certificate", "key_type", "serial", "issuance_id", "reason", "detail"} {
			full[k] = true
		}
	}
	return slices.Sorted(maps.Keys(full))
}

// newBareServer is a Server on a real SQLite store with no manager, for
// tests of the HTTP layer itself.
func newBareServer(t testing.TB) (*Server, string) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "certfleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	id, secret, hash := certfleet.NewTokenSecret()
	if err := store.CreateToken(t.Context(), certfleet.Token{ID: id, Names: []string{"*"}, Permissions: []certfleet.Permission{certfleet.PermAdmin}, Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return &Server{Store: store}, secret
}

// TestProblems: malformed JSON, oversized bodies, unknown fields, wrong
// media types, wrong methods and unknown paths all get problem documents
// with the right status, never a 500.
func TestProblems(t *testing.T) {
	srv, secret := newBareServer(t)
	h := srv.Handler()
	for _, tc := range []struct {
		name, method, path, ctype, body string
		want                            int
	}{
		{"malformed JSON", "PUT", "/v1/names/a.example.org", "application/json", `{"key_types": [`, 400},
		{"unknown field", "PUT", "/v1/names/a.example.org", "application/json", `{"colour": "blue"}`, 400},
		{"two objects", "PUT", "/v1/names/a.example.org", "application/json", `{} {}`, 400},
		{"wrong type", "PUT", "/v1/names/a.example.org", "application/json", `{"key_types": "rsa2048"}`, 400},
		{"unknown key type", "PUT", "/v1/names/a.example.org", "application/json", `{"key_types": ["ed25519"]}`, 400},
		{"same family twice", "PUT", "/v1/names/a.example.org", "application/json", `{"key_types": ["rsa2048", "rsa4096"]}`, 400},
		{"wildcard with http-01", "PUT", "/v1/names/*.example.org", "", ``, 400},
		{"oversized", "PUT", "/v1/names/a.example.org", "application/json", `{"group": "` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413},
		{"not JSON", "PUT", "/v1/names/a.example.org", "text/plain", `hello`, 415},
		{"bad hostname", "GET", "/v1/names/exa_mple.org/cert", "", ``, 400},
		{"bare label", "GET", "/v1/names/localhost/status", "", ``, 400},
		{"wrong method", "PATCH", "/v1/names/a.example.org", "", ``, 405},
		{"wrong method on PEM", "POST", "/v1/names/a.example.org/cert", "", ``, 405},
		{"unknown path", "GET", "/v1/nothing", "", ``, 404},
		{"not requested", "GET", "/v1/names/a.example.org/fullchain", "", ``, 404},
		{"bad wait", "GET", "/v1/names/a.example.org/fullchain?wait=soon", "", ``, 400},
		{"bad key", "GET", "/v1/names/a.example.org/fullchain?key=dsa", "", ``, 400},
		{"bad CSR", "POST", "/v1/names/a.example.org/csr", "application/pkcs10", `-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n`, 400},
		{"empty CSR", "POST", "/v1/names/a.example.org/csr", "application/pkcs10", ``, 400},
		{"bad limit", "GET", "/v1/certificates?limit=-1", "", ``, 400},
		{"bad revoke", "DELETE", "/v1/names/a.example.org?revoke=maybe", "", ``, 400},
		{"delete unknown", "DELETE", "/v1/names/a.example.org", "", ``, 404},
		{"server_name missing", "GET", "/v1/tls/get_certificate", "", ``, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+secret)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q: %s", ct, rec.Body)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tc.want || p.Detail == "" {
				t.Fatalf("problem %+v, %v", p, err)
			}
			if tc.want == 405 && rec.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

var _ = http.StatusOK
