package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/seal"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/acmedns"
	"github.com/certfleet/certfleet/solver/dns01/exec"
	"github.com/certfleet/certfleet/solver/dns01/lego"
	"github.com/certfleet/certfleet/solver/dns01/rfc2136"
	"github.com/certfleet/certfleet/solver/dns01/webhook"
)

// stateDir is where files beside the store go (the dns-01 journal,
// acme-dns credentials): state_dir, by default the SQLite database's
// directory, or /var/lib/certfleet with a PostgreSQL store.
func stateDir(cfg *config.Config) string {
	if cfg.StateDir != "" {
		return cfg.StateDir
	}
	return config.DefaultStateDir(cfg.State)
}

// newDNSResolver builds the resolver [dns01] describes.
func newDNSResolver(cfg *config.Config) *dns01.Resolver {
	r := &dns01.Resolver{Nameservers: cfg.DNS01.Nameservers}
	if cfg.DNS01.AuthoritativePort != 0 {
		r.AuthPort = strconv.Itoa(cfg.DNS01.AuthoritativePort)
	}
	return r
}

// NewDNS01Solver builds the dns-01 solver from cfg's [dns01], or returns
// nil when no certificate uses dns-01 and no provider is configured. cfg's
// "store:NAME" secrets must be resolved already (ResolveSecrets). st, if
// not nil, is the store, where acme-dns registrations are kept when it has
// a master key (see acmeDNSCredentials). It creates state_dir, where the
// dns-01 journal is kept.
func NewDNS01Solver(ctx context.Context, cfg *config.Config, st certfleet.Store, log *slog.Logger) (*dns01.Solver, error) {
	// Names requested over the API may ask for dns-01 too: a configured
	// provider is enough to build the solver.
	if !cfg.Uses(certfleet.ChallengeDNS01) && len(cfg.DNS01.Providers) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(stateDir(cfg), 0o700); err != nil {
		return nil, fmt.Errorf("state_dir %s, where the dns-01 journal is kept: %w; create it or set state_dir to a directory certfleet may write", stateDir(cfg), err)
	}
	r := newDNSResolver(cfg)
	providers := make(map[string]dns01.Provider, len(cfg.DNS01.Providers))
	for name, p := range cfg.DNS01.Providers {
		prov, err := newDNSProvider(ctx, cfg, p, r, st, log)
		if err != nil {
			return nil, fmt.Errorf("[dns01.providers.%s]: %w", name, err)
		}
		providers[name] = prov
	}
	return &dns01.Solver{
		Providers:          providers,
		Routes:             cfg.DNSRoutes(),
		DefaultProvider:    cfg.DNS01.DefaultProvider,
		Resolver:           r,
		PropagationTimeout: cfg.DNS01.PropagationTimeout,
		Journal:            filepath.Join(stateDir(cfg), "dns01-journal.json"),
		Logger:             log.With(certfleet.LogChallenge, string(certfleet.ChallengeDNS01)),
	}, nil
}

func newDNSProvider(ctx context.Context, cfg *config.Config, p config.DNSProvider, r *dns01.Resolver, st certfleet.Store, log *slog.Logger) (dns01.Provider, error) {
	switch p.Type {
	case config.DNSProviderRFC2136:
		return &rfc2136.Provider{Server: p.Server, Zone: p.Zone, KeyName: p.KeyName, Algorithm: p.Algorithm,
			Secret: p.Secret, AllowInsecure: p.AllowInsecure, Resolver: r}, nil
	case config.DNSProviderExec:
		return &exec.Provider{Program: p.Program, Timeout: p.Timeout}, nil
	case config.DNSProviderWebhook:
		var ca []byte
		if p.CAFile != "" {
			var err error
			if ca, err = os.ReadFile(p.CAFile); err != nil {
				return nil, fmt.Errorf("read ca_file: %w", err)
			}
		}
		w := &webhook.Provider{URL: p.URL, BearerToken: p.BearerToken, Username: p.Username, Password: p.Password, CAPEM: ca, Timeout: p.Timeout}
		return w, w.Validate()
	case config.DNSProviderACMEDNS:
		creds, err := acmeDNSCredentials(ctx, cfg, p, st, log)
		if err != nil {
			return nil, err
		}
		return &acmedns.Provider{Server: p.URL, Credentials: creds, AllowFrom: p.AllowFrom}, nil
	default:
		if config.IsLegoDNSProvider(p.Type) {
			return lego.New(lego.Settings{Name: p.Name, Type: p.Type, Keys: p.Keys, Resolver: r, Logger: log})
		}
	}
	return nil, fmt.Errorf("unknown provider type %q", p.Type)
}

// withDNSPreflight makes an Issuer check, before it places a dns-01 order,
// that the order's records can be written (zone found, CNAME delegation
// resolved, the provider's credentials accepted): a wrong TSIG secret then
// costs no order at the CA. Resumed orders are not checked: they are placed
// already. The wrapper keeps the Issuer's optional RenewalInfoer.
func withDNSPreflight(iss certfleet.Issuer, s *dns01.Solver) certfleet.Issuer {
	if s == nil {
		return iss
	}
	p := preflightIssuer{Issuer: iss, solver: s}
	if ri, ok := iss.(certfleet.RenewalInfoer); ok {
		return preflightARIIssuer{p, ri}
	}
	return p
}

type preflightIssuer struct {
	certfleet.Issuer
	solver *dns01.Solver
}

func (p preflightIssuer) Issue(ctx context.Context, req certfleet.IssueRequest) (certfleet.IssueResult, error) {
	if req.Spec.Challenge == certfleet.ChallengeDNS01 && req.ResumeOrderURL == "" {
		if err := p.solver.PreflightVia(ctx, req.Spec.DNSProvider, req.Spec.Identifiers); err != nil {
			return certfleet.IssueResult{}, fmt.Errorf("dns-01 preflight failed, no order placed (run certfleet check): %w", err)
		}
	}
	return p.Issuer.Issue(ctx, req)
}

type preflightARIIssuer struct {
	preflightIssuer
	certfleet.RenewalInfoer
}

// acmeDNSCredentials picks where an acme-dns provider keeps the
// registrations it makes: its credentials_file when one is set; else, when
// the store has a master key, the store itself (secret acme-dns.NAME,
// sealed), which every instance sharing a PostgreSQL database sees — files
// would make each instance register its own subdomain, and only one of them
// can be the CNAME target; else a 0600 file in state_dir. A file left in
// state_dir from before is moved into the store the first time.
func acmeDNSCredentials(ctx context.Context, cfg *config.Config, p config.DNSProvider, st certfleet.Store, log *slog.Logger) (acmedns.CredentialStore, error) {
	if p.CredentialsFile != "" {
		return acmedns.FileCredentials(p.CredentialsFile), nil
	}
	file := acmedns.FileCredentials(filepath.Join(stateDir(cfg), "acme-dns-"+p.Name+".json"))
	sealed, ok := st.(interface{ Sealer() *seal.Sealer })
	name := "acme-dns." + strings.ToLower(p.Name)
	if st == nil || !ok || sealed.Sealer() == nil || certfleet.ValidateSecretName(name) != nil {
		return file, nil
	}
	creds := storeCredentials{st: st, name: name}
	old, err := file.Load(ctx)
	if err != nil || len(old) == 0 {
		return creds, nil // nothing to move (an unreadable file is left alone)
	}
	have, err := creds.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("acme-dns provider %s: %w", p.Name, err)
	}
	if len(have) == 0 {
		if err := creds.Save(ctx, old); err != nil {
			return nil, fmt.Errorf("acme-dns provider %s: move %s into the store: %w", p.Name, file, err)
		}
	}
	if err := os.Remove(string(file)); err != nil {
		return nil, fmt.Errorf("acme-dns provider %s: its credentials are in the store now; remove %s: %w", p.Name, file, err)
	}
	log.Info("acme-dns credentials moved into the store, sealed", "provider", p.Name, "from", string(file), "secret", name)
	return creds, nil
}

// storeCredentials keeps acme-dns registrations as a stored secret.
type storeCredentials struct {
	st   certfleet.SecretStore
	name string
}

func (c storeCredentials) String() string { return "the store (secret " + c.name + ")" }

func (c storeCredentials) Load(ctx context.Context) ([]byte, error) {
	v, err := c.st.Secret(ctx, c.name)
	if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
		return nil, nil
	}
	return v, err
}

func (c storeCredentials) Save(ctx context.Context, data []byte) error {
	return c.st.PutSecret(ctx, c.name, data)
}
