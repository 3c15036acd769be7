package daemon

// Tenants and the ACME accounts declared at runtime (issue 12): the
// issuers of declared accounts, built when first used and rebuilt when the
// account changes (read from the store, so every instance sees a change at
// once), the tenants' orders quotas in the rate-limit budget, and what the
// API is told of them and of the solvers.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/ratelimit"
)

// newIssuer builds the issuer of account name: the ACME issuer itself, and
// it wrapped as the scheduler uses it (the dns-01 preflight).
func (d *Daemon) newIssuer(name, directory string, roots []byte, contact []string, eab *acmeissuer.EAB) (*acmeissuer.Issuer, certfleet.Issuer, error) {
	iss, err := acmeissuer.New(acmeissuer.Config{
		DirectoryURL:    directory,
		TrustedRootsPEM: roots,
		Contact:         contact,
		AccountName:     name,
		EAB:             eab,
		Accounts:        d.Store,
		Solvers:         d.solvers,
		UserAgent:       "certfleet/" + d.version,
		Logger:          d.Logger.With("account", name),
		Observer:        d.observer(), // ACME latency and challenge metrics
	})
	if err != nil {
		return nil, nil, err
	}
	return iss, withDNSPreflight(iss, d.dnsSolver), nil
}

// declaredAccounts keeps the issuers of accounts declared at runtime.
type declaredAccounts struct {
	mu      sync.Mutex // guards issuers
	issuers map[string]declaredIssuer
}

type declaredIssuer struct {
	updated time.Time // the settings' UpdatedAt it was built from
	acme    *acmeissuer.Issuer
	iss     certfleet.Issuer
}

// tenantStore returns the store's TenantStore, or nil.
func (d *Daemon) tenantStore() certfleet.TenantStore {
	ts, _ := d.Store.(certfleet.TenantStore)
	return ts
}

// declaredIssuer returns the issuer of an account declared at runtime: the
// one built before, while the account is unchanged; ENOTFOUND when the
// store declares no such account. One read of the store per call.
func (d *Daemon) declaredIssuer(ctx context.Context, name string) (declaredIssuer, error) {
	ts := d.tenantStore()
	if ts == nil {
		return declaredIssuer{}, certfleet.Errorf(certfleet.ENOTFOUND, "account %q is not configured", name)
	}
	a, err := ts.AccountSettings(ctx, name)
	if err != nil {
		return declaredIssuer{}, err
	}
	x := &d.declared
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur, ok := x.issuers[name]; ok && cur.updated.Equal(a.UpdatedAt) {
		return cur, nil
	}
	var eab *acmeissuer.EAB
	if a.EABKeyID != "" {
		eab = &acmeissuer.EAB{KeyID: a.EABKeyID, HMAC: a.EABHMACKey}
	}
	ai, iss, err := d.newIssuer(name, a.Directory, a.TrustedRootsPEM, a.Contact(), eab)
	if err != nil {
		return declaredIssuer{}, fmt.Errorf("account %q (declared at runtime): %w", name, err)
	}
	if x.issuers == nil {
		x.issuers = make(map[string]declaredIssuer)
	}
	di := declaredIssuer{updated: a.UpdatedAt, acme: ai, iss: iss}
	x.issuers[name] = di
	d.Logger.Info("ACME account declared at runtime in use", "account", name, certfleet.LogCA, a.Directory)
	return di, nil
}

// wireTenants lets the scheduler and the rate-limit budget use the accounts
// declared at runtime (the config's first: a declared account never takes
// a config account's name), and counts tenants' new orders against their
// orders_per_week.
func (d *Daemon) wireTenants() {
	ts := d.tenantStore()
	if ts == nil {
		return
	}
	d.Manager.ResolveIssuer = func(ctx context.Context, name string) (certfleet.Issuer, error) {
		di, err := d.declaredIssuer(ctx, name)
		return di.iss, err
	}
	b, ok := d.Manager.Budget.(*ratelimit.Budget)
	if !ok {
		return
	}
	b.Resolve = func(ctx context.Context, name string) (ratelimit.Account, bool, error) {
		a, err := ts.AccountSettings(ctx, name)
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			return ratelimit.Account{}, false, nil
		} else if err != nil {
			return ratelimit.Account{}, false, err
		}
		return ratelimit.Account{CA: a.Directory, Limits: caLimits(d.Config, a.Directory)}, true, nil
	}
	b.TenantQuota = func(ctx context.Context, tenant string) (ratelimit.Limit, error) {
		t, err := ts.Tenant(ctx, tenant)
		if certfleet.ErrorCode(err) == certfleet.ENOTFOUND {
			return ratelimit.Limit{}, nil // deleted: its certificates are withdrawn
		}
		return ratelimit.Limit{Count: t.OrdersPerWeek, Window: ratelimit.TenantWindow}, err
	}
}

// CheckAccount reports whether account name can order: an account of the
// config, or one declared at runtime. The error (EINVALID) says which
// accounts there are and how to declare one.
func (d *Daemon) CheckAccount(ctx context.Context, name string) error {
	return checkAccountIn(ctx, d.Config, d.tenantStore(), name)
}

// apiSolvers is what the API is told this daemon can answer challenges
// with: the responders that run, the DNS providers, the [webroots] in
// force.
func (d *Daemon) apiSolvers() httpapi.Solvers {
	cfg := d.CurrentConfig()
	sv := httpapi.Solvers{HTTP01: d.HTTP01Addr != "", TLSALPN01: d.TLSALPN01Addr != "",
		Webroots: slices.Sorted(maps.Keys(cfg.Webroots))}
	if d.dnsSolver != nil {
		sv.DNSProviders = slices.Sorted(maps.Keys(d.dnsSolver.Providers))
		sv.DefaultDNSProvider = d.dnsSolver.DefaultProvider
	}
	return sv
}

// resolveRevoker returns the revoker of an account declared at runtime.
func (d *Daemon) resolveRevoker(ctx context.Context, name string) (certfleet.Revoker, error) {
	di, err := d.declaredIssuer(ctx, name)
	if err != nil {
		return nil, err
	}
	return di.acme, nil
}

// tenantAPI sets the Server fields of tenants, declared accounts and
// solvers.
func (d *Daemon) tenantAPI(srv *httpapi.Server) {
	srv.Solvers = d.apiSolvers
	srv.Accounts = d.CheckAccount
	srv.ConfigAccounts = slices.Sorted(maps.Keys(d.Config.Accounts))
	srv.ResolveRevoker = d.resolveRevoker
}
