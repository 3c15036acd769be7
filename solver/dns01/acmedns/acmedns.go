// Package acmedns is a dns01.Provider for acme-dns
// (https://github.com/joohoi/acme-dns), a small DNS server that holds only
// challenge records, updated over an HTTP API.
//
// For each identifier (a wildcard shares its base name's) the provider
// registers once at the server (POST /register), keeps the credentials it
// gets in a JSON file (CredentialsFile, mode 0600; keyed by identifier,
// with the field names of acme-dns's register response, so files other
// clients wrote for the same server can be reused), and sets the TXT value
// with POST /update. You point the identifier at it once with a CNAME:
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
	// CredentialsFile keeps the accounts, identifier → Account. Required;
	// certfleet puts it in the state directory.
	CredentialsFile string
	// AllowFrom, if set, restricts updates of new registrations to these
	// networks (CIDR), as acme-dns's register call allows.
	AllowFrom []string
	// Client makes the requests. Default: a client with a 30 s timeout.
	Client *http.Client

	mu sync.Mutex // guards the file and registration
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
			dns01.RecordName(rec.Domain), dns01.RecordName(rec.Domain), full, p.CredentialsFile)
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
	accts, err := p.load()
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
	accts[domain] = a
	if err := p.save(accts); err != nil {
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

func (p *Provider) load() (map[string]Account, error) {
	if p.CredentialsFile == "" {
		return nil, errors.New("acme-dns: no credentials file configured")
	}
	data, err := os.ReadFile(p.CredentialsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Account{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acme-dns: read credentials: %w", err)
	}
	m := map[string]Account{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("acme-dns: credentials file %s is not a JSON object of accounts: %v", p.CredentialsFile, jsonErrNoValue(err))
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

func (p *Provider) save(m map[string]Account) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.CredentialsFile), 0o700); err != nil {
		return fmt.Errorf("acme-dns: save credentials: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p.CredentialsFile), ".acmedns-*")
	if err != nil {
		return fmt.Errorf("acme-dns: save credentials: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p.CredentialsFile)
	}
	if err != nil {
		return fmt.Errorf("acme-dns: save credentials to %s: %w", p.CredentialsFile, err)
	}
	return nil
}
