// Package acmedns is a dns01.Provider for acme-dns
// (https://github.com/joohoi/acme-dns), a small DNS server that holds only
// challenge records, updated over an HTTP API.
//
// For each identifier (a wildcard shares its base name's) the provider
// registers once at the server (POST /register), keeps the credentials it
// gets (a JSON object keyed by identifier, with the field names of
// acme-dns's register response, so files other clients wrote for the same
// server can be reused) in a CredentialStore — a 0600 file, or certfleet's
// store, sealed and shared by every instance — and sets the TXT value with
// POST /update. You point the identifier at it once with a CNAME:
//
//	_acme-challenge.example.org. CNAME <fulldomain from the file>.
//
// Until that CNAME exists, Present fails with an error that names it.
//
// acme-dns keeps the two most recent values of each subdomain and has no
// delete, so CleanUp does nothing; two values are what a wildcard and its
// apex need at once.
package acmedns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/exec"
)

// Account is one registration at an acme-dns server. Username and Password
// are secrets: never in errors or logs.
type Account struct {
	Username   string   `json:"username"`
	Password   string   `json:"password"`
	FullDomain string   `json:"fulldomain"`
	SubDomain  string   `json:"subdomain"`
	AllowFrom  []string `json:"allowfrom,omitempty"`
}

// Provider talks to one acme-dns server. Safe for concurrent use.
type Provider struct {
	// Server is the API's base URL, as "https://auth.example.org". Required.
	Server string
	// Credentials keeps the accounts, identifier → Account. If nil,
	// CredentialsFile is used (FileCredentials).
	Credentials CredentialStore
	// CredentialsFile is the JSON file used when Credentials is nil.
	CredentialsFile string
	// AllowFrom, if set, restricts updates of new registrations to these
	// networks (CIDR), as acme-dns's register call allows.
	AllowFrom []string
	// Client makes the requests. Default: a client with a 30 s timeout.
	Client *http.Client

	mu sync.Mutex // guards the credentials and registration
}

// CredentialStore keeps the provider's registrations as one JSON document.
// Load returns nil, nil when nothing is stored yet. String says where the
// credentials are, for messages (never what they are).
type CredentialStore interface {
	Load(ctx context.Context) ([]byte, error)
	Save(ctx context.Context, data []byte) error
	String() string
}

func (p *Provider) credentials() CredentialStore {
	if p.Credentials != nil {
		return p.Credentials
	}
	return FileCredentials(p.CredentialsFile)
}

var (
	_ dns01.Provider = (*Provider)(nil)
	_ dns01.Checker  = (*Provider)(nil)
)

// Check registers the identifier if needed and checks that its
// _acme-challenge name points at the registration (rec.FQDN is where the
// solver's CNAME walk ended), so a missing CNAME shows before any order.
func (p *Provider) Check(ctx context.Context, rec dns01.Record) error {
	_, err := p.delegated(ctx, rec)
	return err
}

func (p *Provider) delegated(ctx context.Context, rec dns01.Record) (Account, error) {
	acct, err := p.Account(ctx, rec.Domain)
	if err != nil {
		return Account{}, err
	}
	if full := dns.CanonicalName(acct.FullDomain); full != dns.CanonicalName(rec.FQDN) {
		return Account{}, fmt.Errorf("acme-dns: %s does not point at the acme-dns subdomain: create the record %s CNAME %s (the credentials are in %s)",
			dns01.RecordName(rec.Domain), dns01.RecordName(rec.Domain), full, p.credentials())
	}
	return acct, nil
}

// Present sets rec.Value as the TXT value of the identifier's acme-dns
// subdomain, registering first if needed.
func (p *Provider) Present(ctx context.Context, rec dns01.Record) error {
	acct, err := p.delegated(ctx, rec)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"subdomain": acct.SubDomain, "txt": rec.Value})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(p.Server, "/")+"/update", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-User", acct.Username)
	req.Header.Set("X-Api-Key", acct.Password)
	if _, err := p.do(req); err != nil {
		return fmt.Errorf("acme-dns update for %s: %w", rec.Domain, err)
	}
	return nil
}

// CleanUp does nothing: acme-dns has no delete and keeps two values.
func (p *Provider) CleanUp(ctx context.Context, rec dns01.Record) error { return nil }

// Account returns the registration for domain, registering it at the
// server and saving it first if there is none.
func (p *Provider) Account(ctx context.Context, domain string) (Account, error) {
	domain = strings.TrimPrefix(strings.ToLower(strings.TrimSuffix(domain, ".")), "*.")
	p.mu.Lock()
	defer p.mu.Unlock()
	accts, err := p.load(ctx)
	if err != nil {
		return Account{}, err
	}
	if a, ok := accts[domain]; ok {
		return a, nil
	}
	var reqBody []byte
	if len(p.AllowFrom) > 0 {
		reqBody, _ = json.Marshal(map[string][]string{"allowfrom": p.AllowFrom})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(p.Server, "/")+"/register", bytes.NewReader(reqBody))
	if err != nil {
		return Account{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.do(req)
	if err != nil {
		return Account{}, fmt.Errorf("acme-dns register for %s: %w", domain, err)
	}
	var a Account
	if err := json.Unmarshal(resp, &a); err != nil || a.Username == "" || a.Password == "" || a.FullDomain == "" || a.SubDomain == "" {
		return Account{}, fmt.Errorf("acme-dns register for %s: the server's answer is not a registration (username, password, fulldomain, subdomain)", domain)
	}
	// Another instance sharing the credentials may have registered the
	// identifier meanwhile: keep its registration (ours is left unused).
	if accts, err = p.load(ctx); err != nil {
		return Account{}, err
	}
	if other, ok := accts[domain]; ok {
		return other, nil
	}
	accts[domain] = a
	if err := p.save(ctx, accts); err != nil {
		return Account{}, err
	}
	return a, nil
}

func (p *Provider) do(req *http.Request) ([]byte, error) {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s answered %s: %s", req.URL.Redacted(), resp.Status, exec.Tail(body, 512))
	}
	return body, nil
}

func (p *Provider) load(ctx context.Context) (map[string]Account, error) {
	cs := p.credentials()
	data, err := cs.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("acme-dns: read credentials from %s: %w", cs, err)
	}
	m := map[string]Account{}
	if len(data) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("acme-dns: credentials in %s are not a JSON object of accounts: %v", cs, jsonErrNoValue(err))
	}
	return m, nil
}

// jsonErrNoValue keeps a decoding error's position but not the text it
// quotes, which might be a password.
func jsonErrNoValue(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "wrong structure"
}

func (p *Provider) save(ctx context.Context, m map[string]Account) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	cs := p.credentials()
	if err := cs.Save(ctx, data); err != nil {
		return fmt.Errorf("acme-dns: save credentials to %s: %w", cs, err)
	}
	return nil
}

// FileCredentials keeps the credentials in a JSON file of mode 0600,
// replaced atomically.
type FileCredentials string

func (f FileCredentials) String() string { return string(f) }

// Load implements CredentialStore.
func (f FileCredentials) Load(context.Context) ([]byte, error) {
	if f == "" {
		return nil, errors.New("no credentials file configured")
	}
	data, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// Save implements CredentialStore.
func (f FileCredentials) Save(_ context.Context, data []byte) error {
	if f == "" {
		return errors.New("no credentials file configured")
	}
	dir := filepath.Dir(string(f))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".acmedns-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), string(f))
	}
	return err
}
