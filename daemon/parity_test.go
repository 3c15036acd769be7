package daemon_test

import (
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/daemontest"
	"github.com/certfleet/certfleet/internal/pebbleca"
)

// TestAPIParity is issue 12's fifth finding: a control panel can say over
// the API what a [[certificate]] says in the file: several identifiers (an
// IP address among them) without a CSR, dual key types, an ACME profile,
// the renewal policy, and an account declared at runtime, used without a
// restart.
func TestAPIParity(t *testing.T) {
	port := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port, Profiles: map[string]pebbleca.Profile{
		"classic": {}, "shortlived": {ValidityPeriod: 6 * time.Hour}}})
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
[api]
listen = "127.0.0.1:0"
%s`, ca.DirectoryURL(), writeRoots(t, dir, ca), port, daemontest.SelfTestSection(ca, port, 0)))
	ctx := t.Context()
	if _, err := x.admin.PutAccount(ctx, "panel", httpapi.AccountRequest{Directory: ca.DirectoryURL(), TrustedRoots: string(ca.TLSRootPEM())}); err != nil {
		t.Fatal(err)
	}
	req := &httpapi.NameRequest{
		Identifiers: []string{"site.certfleet.test", "www.site.certfleet.test", "127.0.0.1"},
		KeyTypes:    []string{"ecdsa-p256", "rsa2048"}, Profile: "shortlived", RenewBefore: "2h", ReuseKey: true, Account: "panel",
	}
	st, err := x.admin.PutName(ctx, "site.certfleet.test", req)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := x.d.IssueOnce(ctx); err != nil || rep.Issued != 2 {
		t.Fatalf("issue: %d issued, %v: %+v", rep.Issued, err, rep.Results)
	}
	sp, err := x.d.Store.Spec(ctx, st.Certificate)
	if err != nil || sp.Profile != "shortlived" || sp.RenewBefore != 2*time.Hour || !sp.ReuseKey || sp.Account != "panel" || len(sp.KeyTypes) != 2 {
		t.Fatalf("spec = %+v, %v", sp, err)
	}
	accts, _ := x.d.Store.Accounts(ctx)
	var panelURL string
	for _, a := range accts {
		if a.Name == "panel" {
			panelURL = a.URL
		}
	}
	for _, fam := range []string{"ecdsa", "rsa"} {
		full, err := x.admin.Fetch(ctx, "www.site.certfleet.test", "fullchain", httpapi.FetchOptions{Key: fam})
		if err != nil {
			t.Fatal(err)
		}
		key, err := x.admin.Fetch(ctx, "127.0.0.1", "privkey", httpapi.FetchOptions{Key: fam})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(full.Data, key.Data)
		if err != nil {
			t.Fatal(err)
		}
		leaf := pair.Leaf
		if _, isRSA := leaf.PublicKey.(*rsa.PublicKey); isRSA != (fam == "rsa") {
			t.Errorf("?key=%s gave a %T key", fam, leaf.PublicKey)
		}
		if !slices.Equal(leaf.DNSNames, []string{"site.certfleet.test", "www.site.certfleet.test"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("%s certificate names %v %v", fam, leaf.DNSNames, leaf.IPAddresses)
		}
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 6*time.Hour+time.Minute {
			t.Errorf("%s certificate lives %v: not the shortlived profile's 6h", fam, life)
		}
	}
	isss, _ := x.d.Store.Issuances(ctx, certfleet.IssuanceFilter{Spec: st.Certificate})
	for _, iss := range isss {
		if iss.AccountURL != panelURL || panelURL == "" {
			t.Errorf("issuance %d ordered by %q, want the declared account panel (%q)", iss.ID, iss.AccountURL, panelURL)
		}
	}
	// The same request again changes nothing; one without identifiers
	// keeps the names and changes the settings.
	if st2, err := x.admin.PutName(ctx, "site.certfleet.test", req); err != nil || !st2.Issued {
		t.Fatalf("same PUT again: %+v, %v", st2, err)
	}
	if _, err := x.admin.PutName(ctx, "site.certfleet.test", &httpapi.NameRequest{KeyTypes: req.KeyTypes, Profile: "shortlived", RenewBefore: "3h", Account: "panel"}); err != nil {
		t.Fatal(err)
	}
	if sp, _ := x.d.Store.Spec(ctx, st.Certificate); len(sp.Identifiers) != 3 || sp.RenewBefore != 3*time.Hour || sp.ReuseKey {
		t.Errorf("after a PUT without identifiers: %+v; want the three names kept, renew_before 3h, reuse_key off", sp)
	}
}

// TestAPIWebroot: a name requested over the API with a web root the
// config names in [webroots] is validated through the files certfleet
// writes there, served by the site's own web server.
func TestAPIWebroot(t *testing.T) {
	port := daemontest.FreePort(t)
	ca, err := pebbleca.Start(t.Context(), pebbleca.Config{HTTPPort: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: http.FileServer(http.Dir(root))}
	go web.Serve(ln)
	t.Cleanup(func() { web.Close() })
	x := openAPIDaemon(t, dir, fmt.Sprintf(`[ca]
directory = %q
trusted_roots = %q
[http01]
listen = ""
[webroots]
site = %q
[api]
listen = "127.0.0.1:0"
`, ca.DirectoryURL(), writeRoots(t, dir, ca), root))
	if _, err := x.admin.PutName(t.Context(), "files.certfleet.test", &httpapi.NameRequest{Challenge: "webroot", Webroot: "site"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := x.d.IssueOnce(t.Context()); err != nil || rep.Issued != 1 {
		t.Fatalf("issue through the web root: %d, %v: %+v", rep.Issued, err, rep.Results)
	}
}

// TestAPIDNSProvider: with two DNS providers and no default, a dns-01 name
// names its provider; a wildcard is issued through it.
func TestAPIDNSProvider(t *testing.T) {
	n := daemontest.StartDNSNet(t)
	path := n.Config(t, n.Secret, `[dns01.providers.other]
type = "rfc2136"
key_name = "other"
secret = "b3RoZXItc2VjcmV0LW5vdC11c2VkLWhlcmU="
[api]
listen = "127.0.0.1:0"
`)
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x := openAPIDaemon(t, filepath.Dir(path), string(body[len("state = \"state.db\"\n[log]\nlevel = \"debug\"\n"):]))
	ctx := t.Context()
	_, err = x.admin.PutName(ctx, "*.wild.example.test", &httpapi.NameRequest{Challenge: "dns-01"})
	wantProblem(t, "dns-01 without dns_provider and no default", err, 400, certfleet.EINVALID, "dns_provider", "bind, other")
	if _, err := x.admin.PutName(ctx, "*.wild.example.test", &httpapi.NameRequest{Challenge: "dns-01", DNSProvider: "bind"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := x.d.IssueOnce(ctx); err != nil || rep.Issued != 1 {
		t.Fatalf("issue the wildcard through provider bind: %d, %v: %+v", rep.Issued, err, rep.Results)
	}
}
