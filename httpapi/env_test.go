package httpapi_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/internal/issuetest"
	"github.com/certfleet/certfleet/internal/pebbleca"
	"github.com/certfleet/certfleet/manager"
	"github.com/certfleet/certfleet/sqlite"
)

func TestMain(m *testing.M) { issuetest.Main(m) }

// env is a certfleet with its API, against an in-process Pebble: a real
// SQLite store, real http-01 validation on loopback, the real manager
// running as the daemon does.
type env struct {
	t       *testing.T
	ca      *pebbleca.CA
	store   *sqlite.Store
	srv     *httpapi.Server
	api     *httptest.Server // bearer-token handler
	urlAPI  *httptest.Server // URL-credential handler
	admin   *httpapi.Client
	changes *certfleet.Changes
}

// notifier is the deployer the daemon wires: it wakes long-polls.
type notifier struct{ c *certfleet.Changes }

func (n notifier) Deploy(_ context.Context, sp certfleet.CertificateSpec, _ certfleet.Issuance) error {
	n.c.NotifySpec(sp.Name)
	return nil
}

func newEnv(t *testing.T, packSize int) *env {
	t.Helper()
	store := issuetest.OpenSQLite(t)
	ca, http01Solver := issuetest.StartCA(t, pebbleca.Config{}, store)
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(), TrustedRootsPEM: ca.TLSRootPEM(), Accounts: store,
		Solvers:      map[certfleet.ChallengeType]certfleet.Solver{certfleet.ChallengeHTTP01: http01Solver},
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	changes := &certfleet.Changes{}
	mgr := &manager.Manager{
		Store: store, Issuers: map[string]certfleet.Issuer{certfleet.DefaultAccount: iss},
		Deployer: notifier{changes}, Concurrency: 4, PollInterval: time.Second,
		Events: store, // the audit trail, as the daemon wires it
	}
	wg.Add(1)
	go func() { defer wg.Done(); mgr.Run(runCtx) }()

	srv := &httpapi.Server{
		Store: store, Changes: changes, Wake: mgr.Wake, PackSize: packSize,
		Revokers:     map[string]certfleet.Revoker{certfleet.DefaultAccount: iss},
		Events:       store, // the audit trail, as the daemon wires it
		PollInterval: 200 * time.Millisecond,
	}
	e := &env{t: t, ca: ca, store: store, srv: srv, changes: changes}
	e.api = httptest.NewServer(srv.Handler())
	t.Cleanup(e.api.Close)
	e.urlAPI = httptest.NewServer(srv.URLHandler())
	t.Cleanup(e.urlAPI.Close)
	e.admin = e.client(e.token(nil, false, certfleet.PermAdmin))
	return e
}

// token creates a token and returns its secret.
func (e *env) token(names []string, url bool, perms ...certfleet.Permission) string {
	e.t.Helper()
	if names == nil {
		names = []string{"*"}
	}
	id, secret, hash := certfleet.NewTokenSecret()
	err := e.store.CreateToken(e.t.Context(), certfleet.Token{ID: id, Description: "test", Names: names,
		Permissions: perms, URLCredential: url, Hash: hash, CreatedAt: time.Now()})
	if err != nil {
		e.t.Fatalf("create token: %v", err)
	}
	return secret
}

func (e *env) client(secret string) *httpapi.Client {
	return &httpapi.Client{BaseURL: e.api.URL, Token: secret}
}

// issue requests name and waits until it is issued.
func (e *env) issue(name string, req *httpapi.NameRequest) httpapi.NameStatus {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	if _, err := e.admin.PutName(ctx, name, req); err != nil {
		e.t.Fatalf("PUT %s: %v", name, err)
	}
	st, err := e.admin.WaitIssued(ctx, name)
	if err != nil {
		e.t.Fatalf("wait for %s: %v (status %+v)", name, err, st)
	}
	return st
}

// certStatus asks Pebble's management API whether serial is "Valid" or
// "Revoked".
func (e *env) certStatus(serial string) string {
	e.t.Helper()
	c := e.ca.HTTPClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get(e.ca.ManagementURL() + "/cert-status-by-serial/" + serial)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("cert status %s: HTTP %d: %s", serial, resp.StatusCode, body)
	}
	var st struct{ Status string }
	if err := json.Unmarshal(body, &st); err != nil {
		e.t.Fatal(err)
	}
	return st.Status
}

// verify checks that chainPEM verifies against the CA's roots for name.
func (e *env) verify(chainPEM []byte, name string) *x509.Certificate {
	e.t.Helper()
	certs, err := certfleet.ParseChain(chainPEM)
	if err != nil {
		e.t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: e.ca.Roots(), Intermediates: inter}); err != nil {
		e.t.Fatalf("certificate for %s does not verify against the CA's roots: %v", name, err)
	}
	return certs[0]
}
