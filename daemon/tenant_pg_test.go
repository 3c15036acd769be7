package daemon_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pgtest"
	"github.com/certfleet/certfleet/seal"
)

// TestTenantsAcrossInstances: two instances share one PostgreSQL
// database. A tenant and an ACME account created through instance A's API
// after B started are used by B at once, without a restart: B accepts the
// tenant's token and names, orders them with the declared account, and
// enforces a quota changed on A.
func TestTenantsAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	ca, port := daemontest.StartCA(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "certfleet.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`state = %q
state_dir = %q
[ca]
directory = %q
trusted_roots = %q
[http01]
listen = "127.0.0.1:%d"
[tlsalpn01]
listen = ""
[api]
listen = "127.0.0.1:0"
%s`, dsn, dir, ca.DirectoryURL(), writeRoots(t, dir, ca), port, daemontest.SelfTestSection(ca, port, 0))), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	open := func(instance string, ln net.Listener) (*daemon.Daemon, string) {
		t.Helper()
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := daemon.Open(t.Context(), cfg, daemon.Options{StartResponders: true, Instance: instance,
			MasterKey: seal.EncodeMasterKey(key), HTTP01Listener: ln})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		addr, _, err := d.StartAPI(t.Context(), daemon.APIOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d, "http://" + addr
	}
	a, apiA := open("instance-a", nil)
	// B runs its own http-01 responder, on a port the CA does not dial:
	// A's answers for both from the store, as behind a load balancer.
	lnB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, apiB := open("instance-b", lnB)
	ctx := t.Context()

	adminA := &httpapi.Client{BaseURL: apiA, Token: newToken(t, a, []string{"*"}, false, certfleet.PermAdmin)}
	if _, err := adminA.PutAccount(ctx, "runtime", httpapi.AccountRequest{Directory: ca.DirectoryURL(), TrustedRoots: string(ca.TLSRootPEM())}); err != nil {
		t.Fatal(err)
	}
	if _, err := adminA.PutTenant(ctx, "t1", httpapi.TenantRequest{Names: []string{"*.t1.certfleet.test"}, Account: "runtime"}); err != nil {
		t.Fatal(err)
	}
	tok, err := adminA.CreateTenantToken(ctx, "t1", httpapi.TokenRequest{Permissions: []certfleet.Permission{certfleet.PermRequestNames, certfleet.PermReadKeys}})
	if err != nil {
		t.Fatal(err)
	}
	onB := &httpapi.Client{BaseURL: apiB, Token: tok.Secret}
	st, err := onB.PutName(ctx, "x.t1.certfleet.test", nil)
	if err != nil {
		t.Fatalf("B takes the tenant made on A: %v", err)
	}
	if rep, err := b.IssueOnce(ctx); err != nil || rep.Issued != 1 {
		t.Fatalf("B issues with the account declared on A: %d, %v: %+v", rep.Issued, err, rep.Results)
	}
	accts, err := b.Store.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var runtimeURL string
	for _, acct := range accts {
		if acct.Name == "runtime" {
			runtimeURL = acct.URL
		}
	}
	isss, err := b.Store.Issuances(ctx, certfleet.IssuanceFilter{Spec: st.Certificate})
	if err != nil || len(isss) != 1 || isss[0].AccountURL != runtimeURL || runtimeURL == "" || isss[0].Tenant != "t1" {
		t.Fatalf("issuances of %s: %+v, %v; want one of tenant t1 by account runtime (%s)", st.Certificate, isss, err, runtimeURL)
	}
	if _, err := onB.Fetch(ctx, "x.t1.certfleet.test", "privkey", httpapi.FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	// A quota set on A holds on B at once.
	if err := adminA.JSON(ctx, "PATCH", "/v1/tenants/t1", map[string]int{"max_names": 1}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = onB.PutName(ctx, "y.t1.certfleet.test", nil)
	wantProblem(t, "a second name on B over the quota set on A", err, 403, certfleet.EQUOTA, "at most 1")
}
