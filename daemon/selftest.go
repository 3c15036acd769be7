package daemon

// Ready before ordering (issue 14): the self-tester the scheduler consults
// before it orders names not yet proven, the dns-persist-01 solver, and
// the record a domain's owner publishes for dns-persist-01.

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/acmeissuer"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/selftest"
	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dnspersist01"
)

// newSelfTester builds the self-tester of cfg's [self_test]; nil when it
// is off ([self_test] enabled = false; it is on by default).
func (d *Daemon) newSelfTester(cfg *config.Config, log *slog.Logger) *selftest.Tester {
	st := cfg.SelfTest
	if !st.Enabled {
		return nil
	}
	return &selftest.Tester{
		Store:          d.Store,
		Resolver:       &dns01.Resolver{Nameservers: st.Resolvers},
		HTTPPort:       st.HTTPPort,
		TLSPort:        st.TLSPort,
		DNS01:          d.dnsSolver,
		Persist:        d.PersistIdentity,
		PersistWarning: st.PersistWarning,
		Timeout:        st.Timeout,
		Logger:         log.With("component", "selftest"),
	}
}

// PersistIdentity returns what a dns-persist-01 record must name for an
// account (of the config, or declared at runtime): its URL, registering
// the account at the CA when it has none yet, and the CA's issuer domain
// names.
func (d *Daemon) PersistIdentity(ctx context.Context, account string) (certfleet.PersistIdentity, error) {
	if iss, ok := d.acme[account]; ok {
		return iss.PersistIdentity(ctx)
	}
	di, err := d.declaredIssuer(ctx, account)
	if err != nil {
		return certfleet.PersistIdentity{}, err
	}
	return di.acme.PersistIdentity(ctx)
}

// PersistRecords returns, for each name, the dns-persist-01 TXT record
// its owner publishes so that account may validate it ("NAME TXT VALUE"
// lines; a wildcard's record, with policy=wildcard, also covers its base
// name). certfleet never writes these records.
func (d *Daemon) PersistRecords(ctx context.Context, account string, names []string) ([]string, error) {
	who, err := d.PersistIdentity(ctx, account)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		id, err := certfleet.ParseIdentifier(n)
		if err != nil {
			return nil, err
		}
		if err := certfleet.ChallengeDNSPersist01.CanProve(id); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%s. TXT %q", certfleet.PersistRecordName(id.Value), selftest.PersistRecord(who, id)))
	}
	return out, nil
}

// persistSolver answers dns-persist-01 challenges: it writes nothing, and
// before a challenge is answered checks the record as the CA will, so a
// missing one fails before the CA counts a failed validation.
func (d *Daemon) persistSolver() certfleet.Solver {
	return &dnspersist01.Solver{Check: func(ctx context.Context, chal certfleet.Challenge) error {
		t := &selftest.Tester{Resolver: &dns01.Resolver{Nameservers: d.live.config().SelfTest.Resolvers}}
		return t.CheckPersist(ctx, chal)
	}}
}

// PersistLookup returns what certfleet check uses to read, for an account
// of cfg, what a dns-persist-01 record must name (PersistIdentity). *st is
// the store check opened (preflight.NeedsStore says when), read at each
// call: an account certfleet has not registered yet is registered at the
// CA, which is the only way to learn its URL.
func PersistLookup(cfg *config.Config, st *certfleet.Store) func(ctx context.Context, account string) (certfleet.PersistIdentity, error) {
	return func(ctx context.Context, account string) (certfleet.PersistIdentity, error) {
		acct, ok := cfg.Accounts[account]
		if !ok {
			return certfleet.PersistIdentity{}, certfleet.Errorf(certfleet.EINVALID, "account %q is not in the config", account)
		}
		if *st == nil {
			return certfleet.PersistIdentity{}, certfleet.Errorf(certfleet.EUNAVAILABLE, "the store is not open")
		}
		var roots []byte
		if acct.TrustedRoots != "" {
			var err error
			if roots, err = os.ReadFile(acct.TrustedRoots); err != nil {
				return certfleet.PersistIdentity{}, fmt.Errorf("account %q: read trusted_roots: %w", account, err)
			}
		}
		var eab *acmeissuer.EAB
		if acct.EABKeyID != "" {
			eab = &acmeissuer.EAB{KeyID: acct.EABKeyID, HMAC: acct.EABHMACKey}
		}
		iss, err := acmeissuer.New(acmeissuer.Config{DirectoryURL: acct.Directory, TrustedRootsPEM: roots, Contact: acct.Contact(),
			AccountName: account, EAB: eab, Accounts: *st, UserAgent: "certfleet-check"})
		if err != nil {
			return certfleet.PersistIdentity{}, err
		}
		return iss.PersistIdentity(ctx)
	}
}
