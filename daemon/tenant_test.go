package daemon_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/seal"
)

// apiDaemon is a daemon serving the API, with an operator's admin client.
type apiDaemon struct {
	d     *daemon.Daemon
	api   string
	admin *httpapi.Client
}

// openAPIDaemon writes body (everything but state and [log]) as the config
// in dir, opens a daemon with its responders and a master key, and starts
// its API.
func openAPIDaemon(t *testing.T, dir, body string) apiDaemon {
	t.Helper()
	path := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(path, []byte("state = \"state.db\"\n[log]\nlevel = \"debug\"\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true, MasterKey: seal.EncodeMasterKey(key)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api := "http://" + addr
	return apiDaemon{d: d, api: api, admin: &httpapi.Client{BaseURL: api, Token: newToken(t, d, []string{"*"}, false, certfleet.PermAdmin)}}
}

// writeRoots writes the CA's TLS root for trusted_roots and returns its
// path.
func writeRoots(t *testing.T, dir string, ca *pebbleca.CA) string {
	t.Helper()
	p := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p, ca.TLSRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantProblem(t *testing.T, what string, err error, status int, code string, says ...string) {
	t.Helper()
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Status != status || (code != "" && p.Code != code) {
		t.Fatalf("%s: %v; want a %d problem (%s)", what, err, status, code)
	}
	for _, s := range says {
		if !strings.Contains(p.Detail, s) {
			t.Errorf("%s: the problem says %q; want it to mention %q", what, p.Detail, s)
		}
	}
}

// TestTenantsPacksAccountsQuotas is issue 12's shared-hosting case: two
// tenants made over the API, pack_size 5, two ACME accounts (the config's
// and one declared over the API, each with External Account Binding at a
// CA that requires it). No certificate ever names two tenants' names; each
// tenant's names are ordered under its own account; a tenant over its names
// quota gets a 403 problem saying what the quota is and how to raise it,
// and one over its orders quota is deferred, with the reason in its
// status, and nothing is ordered.
func TestTenantsPacksAccountsQuotas(t *testing.T) {
	port := daemontest.FreePort(t)
	hmac := func(s string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(s + "-0123456789abcdef0123456789abcdef"))
	}
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port, RequireEAB: true,
		EABKeys: map[string]string{"kid-shared": hmac("shared"), "kid-b": hmac("b")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	dir := t.TempDir()
	x := openAPIDaemon(t, dir, fmt.Sprintf(`[ca]
directory = %q
trusted_roots = %q
eab_key_id = "kid-shared"
eab_hmac_key = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = ""
[defaults]
output_dir = ""
[api]
listen = "127.0.0.1:0"
pack_size = 5
# The operator's own certificate, inside what will be tenant a's names.
[[certificate]]
name = "legacy"
identifiers = ["old.a.certfleet.test"]
%s`, ca.DirectoryURL(), writeRoots(t, dir, ca), hmac("shared"), port, daemontest.SelfTestSection(ca, port, 0)))
	ctx := t.Context()

	// Tenant b orders with an account declared over the API.
	if _, err := x.admin.PutAccount(ctx, "b-acct", httpapi.AccountRequest{Directory: ca.DirectoryURL(), Email: "ops@b.example",
		EABKeyID: "kid-b", EABHMACKey: hmac("b"), TrustedRoots: string(ca.TLSRootPEM())}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.admin.PutTenant(ctx, "a", httpapi.TenantRequest{Names: []string{"*.a.certfleet.test"}, MaxNames: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := x.admin.PutTenant(ctx, "b", httpapi.TenantRequest{Names: []string{"*.b.certfleet.test"}, Account: "b-acct", OrdersPerWeek: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = x.admin.PutTenant(ctx, "c", httpapi.TenantRequest{Names: []string{"shop.a.certfleet.test"}})
	wantProblem(t, "a tenant overlapping tenant a", err, 409, certfleet.ECONFLICT, "*.a.certfleet.test")
	client := map[string]*httpapi.Client{}
	for _, tn := range []string{"a", "b"} {
		tok, err := x.admin.CreateTenantToken(ctx, tn, httpapi.TokenRequest{Description: "panel of " + tn,
			Permissions: []certfleet.Permission{certfleet.PermRequestNames, certfleet.PermReadKeys}})
		if err != nil || tok.Tenant != tn || tok.Secret == "" {
			t.Fatalf("token of %s: %+v, %v", tn, tok, err)
		}
		client[tn] = &httpapi.Client{BaseURL: x.api, Token: tok.Secret}
	}

	// Names of both tenants, interleaved, with the same settings: packs
	// of 5 would hold them all, but never cross a tenant.
	names := map[string][]string{"a": {"x.a.certfleet.test", "y.a.certfleet.test", "z.a.certfleet.test"}, "b": {"x.b.certfleet.test", "y.b.certfleet.test"}}
	for i := range 3 {
		for _, tn := range []string{"a", "b"} {
			if i < len(names[tn]) {
				if _, err := client[tn].PutName(ctx, names[tn][i], nil); err != nil {
					t.Fatalf("PUT %s as tenant %s: %v", names[tn][i], tn, err)
				}
			}
		}
	}
	orders := ca.NewOrders()
	_, err = client["a"].PutName(ctx, "w.a.certfleet.test", nil)
	wantProblem(t, "tenant a's fourth name", err, 403, certfleet.EQUOTA, "at most 3", "max_names")
	if _, err := x.d.Store.Spec(ctx, "w.a.certfleet.test"); certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
		t.Errorf("the name refused for the quota was stored: %v", err)
	}
	// Tenant a may not take over the operator's name, nor read it, though
	// its token's pattern covers it; nor ask for a name outside its own.
	_, err = client["a"].PutName(ctx, "old.a.certfleet.test", nil)
	wantProblem(t, "tenant a requests the operator's name", err, 409, certfleet.ECONFLICT)
	_, err = client["a"].PutName(ctx, "x.b.certfleet.test", nil)
	wantProblem(t, "tenant a requests tenant b's name", err, 403, "forbidden")
	// Among the identifiers of its own name too: the answer is the one of
	// a name outside the token, not that the name is someone's.
	_, err = client["a"].PutName(ctx, "n.a.certfleet.test", &httpapi.NameRequest{Identifiers: []string{"n.a.certfleet.test", "x.b.certfleet.test"}})
	wantProblem(t, "tenant a lists tenant b's name among its identifiers", err, 403, "forbidden", `does not cover "x.b.certfleet.test"`)
	wantProblem(t, "a tenant's token lists the tenants", client["a"].JSON(ctx, "GET", "/v1/tenants", nil, nil), 403, "forbidden")

	rep, err := x.d.IssueOnce(ctx)
	if err != nil || rep.Issued != 3 || rep.Failed != 0 {
		t.Fatalf("issue: issued %d, failed %d, %v: %+v", rep.Issued, rep.Failed, err, rep.Results)
	}
	if n := ca.NewOrders() - orders; n != 3 {
		t.Errorf("%d orders, want 3: legacy, tenant a's pack, tenant b's pack", n)
	}
	accounts, err := x.d.Store.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accountURL := map[string]string{}
	for _, a := range accounts {
		accountURL[a.Name] = a.URL
	}
	if accountURL["default"] == "" || accountURL["b-acct"] == "" || accountURL["default"] == accountURL["b-acct"] {
		t.Fatalf("accounts registered: %+v; want default and b-acct, distinct", accountURL)
	}
	wantAccount := map[string]string{"a": accountURL["default"], "b": accountURL["b-acct"]}
	all, err := x.d.Store.Issuances(ctx, certfleet.IssuanceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, iss := range all {
		if iss.Spec == "legacy" {
			continue
		}
		tenants := map[string]bool{}
		for _, id := range iss.Identifiers {
			tenants[strings.Split(id.Value, ".")[1]] = true
			seen[id.Value] = true
		}
		if len(tenants) != 1 || !tenants[iss.Tenant] {
			t.Errorf("certificate %s (tenant %q) names %v: the names of %d tenants", iss.Spec, iss.Tenant, certfleet.IdentifierValues(iss.Identifiers), len(tenants))
		}
		if iss.AccountURL != wantAccount[iss.Tenant] {
			t.Errorf("tenant %s's certificate %s was ordered by %s, want its account %s", iss.Tenant, iss.Spec, iss.AccountURL, wantAccount[iss.Tenant])
		}
	}
	for _, n := range slices.Concat(names["a"], names["b"]) {
		if !seen[n] {
			t.Errorf("%s was not issued", n)
		}
	}
	// Each tenant reads its own keys; the operator's certificate inside
	// tenant a's names is not tenant a's to read.
	for tn, ns := range names {
		if _, err := client[tn].Fetch(ctx, ns[0], "privkey", httpapi.FetchOptions{}); err != nil {
			t.Errorf("tenant %s reads its key of %s: %v", tn, ns[0], err)
		}
	}
	_, err = client["a"].Fetch(ctx, "old.a.certfleet.test", "privkey", httpapi.FetchOptions{})
	wantProblem(t, "tenant a reads the operator's key within its names", err, 403, "forbidden")
	list, err := client["b"].Certificates(ctx, "", 0)
	if err != nil || len(list.Certificates) != 1 || len(list.Certificates[0].Identifiers) != 2 {
		t.Errorf("tenant b's list: %+v, %v; want its one pack", list, err)
	}

	// Tenant b has placed its one order of the week: a new name joins its
	// pack (a new certificate), and the order is deferred, not placed.
	if _, err := client["b"].PutName(ctx, "z.b.certfleet.test", nil); err != nil {
		t.Fatal(err)
	}
	orders = ca.NewOrders()
	if _, err := x.d.IssueOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ca.NewOrders() - orders; n != 0 {
		t.Errorf("%d orders placed for tenant b over its orders_per_week", n)
	}
	st, _, _, err := client["b"].Status(ctx, "z.b.certfleet.test", httpapi.FetchOptions{})
	if err != nil || st.Issued || len(st.Keys) != 1 || !strings.Contains(st.Keys[0].Deferred, `tenant "b"`) ||
		!strings.Contains(st.Keys[0].Deferred, "orders_per_week") || st.Keys[0].DeferredUntil.IsZero() {
		t.Fatalf("status of tenant b's name over its order quota: %+v, %v; want deferred, saying why and until when", st, err)
	}
}

// TestAPIOnlyConfig is issue 12's third finding: a config with no
// [[certificate]] at all, whose responders' addresses are set, answers
// http-01 and tls-alpn-01 for names requested over the API.
func TestAPIOnlyConfig(t *testing.T) {
	httpPort, tlsPort := daemontest.FreePort(t), daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: httpPort, TLSPort: tlsPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	dir := t.TempDir()
	x := openAPIDaemon(t, dir, fmt.Sprintf(`[ca]
directory = %q
trusted_roots = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = "127.0.0.1:%d"
[api]
listen = "127.0.0.1:0"
%s`, ca.DirectoryURL(), writeRoots(t, dir, ca), httpPort, tlsPort, daemontest.SelfTestSection(ca, httpPort, tlsPort)))
	ctx := t.Context()
	for name, challenge := range map[string]string{"web.certfleet.test": "http-01", "alpn.certfleet.test": "tls-alpn-01"} {
		if _, err := x.admin.PutName(ctx, name, &httpapi.NameRequest{Challenge: challenge}); err != nil {
			t.Fatalf("PUT %s (%s): %v", name, challenge, err)
		}
	}
	rep, err := x.d.IssueOnce(ctx)
	if err != nil || rep.Issued != 2 {
		t.Fatalf("an API-only config issued %d of 2 (http-01, tls-alpn-01): %v; %+v", rep.Issued, err, rep.Results)
	}
}

// TestUnservableRequestsRefused is issue 12's fourth finding: a request no
// configured solver can serve is refused at once with a problem saying
// what to configure, not accepted and failed at the CA hours later.
func TestUnservableRequestsRefused(t *testing.T) {
	ca, _ := daemontest.StartCA(t)
	dir := t.TempDir()
	// No DNS provider; the http-01 responder disabled; tls-alpn-01 left at
	// its default, which no certificate of the file uses.
	x := openAPIDaemon(t, dir, fmt.Sprintf(`[ca]
directory = %q
trusted_roots = %q
[http01]
listen = ""
[api]
listen = "127.0.0.1:0"
`, ca.DirectoryURL(), writeRoots(t, dir, ca)))
	ctx := t.Context()
	for _, tc := range []struct {
		req  httpapi.NameRequest
		says string
	}{
		{httpapi.NameRequest{Challenge: "dns-01"}, "[dns01.providers"},
		{httpapi.NameRequest{Challenge: "http-01"}, "[http01] listen"},
		{httpapi.NameRequest{}, "[http01] listen"},
		{httpapi.NameRequest{Challenge: "tls-alpn-01"}, "[tlsalpn01] listen"},
	} {
		_, err := x.admin.PutName(ctx, "refused.certfleet.test", &tc.req)
		wantProblem(t, fmt.Sprintf("PUT %+v", tc.req), err, 400, certfleet.EINVALID, tc.says)
	}
	if specs, _ := x.d.Store.Specs(ctx, certfleet.SpecFilter{IncludeDisabled: true}); len(specs) != 0 {
		t.Errorf("refused requests stored %d specs", len(specs))
	}
	// What the config file can say but this one does not: a web root of
	// [webroots], an account.
	for _, tc := range []struct {
		req  httpapi.NameRequest
		says string
	}{
		{httpapi.NameRequest{Challenge: "webroot", Webroot: "site"}, "[webroots]"},
		{httpapi.NameRequest{Challenge: "webroot"}, "give webroot"},
		{httpapi.NameRequest{Challenge: "dns-01", DNSProvider: "bind"}, "[dns01.providers"},
		{httpapi.NameRequest{Account: "nowhere"}, "PUT /v1/accounts/nowhere"},
		{httpapi.NameRequest{Identifiers: []string{"other.certfleet.test"}}, "must be one of them"},
		{httpapi.NameRequest{RenewBefore: "soon"}, "renew_before"},
	} {
		_, err := x.admin.PutName(ctx, "refused.certfleet.test", &tc.req)
		wantProblem(t, fmt.Sprintf("PUT %+v", tc.req), err, 400, certfleet.EINVALID, tc.says)
	}
}
