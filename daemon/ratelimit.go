package daemon

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/ratelimit"
)

// newBudget builds the rate-limit budget of every configured account: the
// CA's default limits (Let's Encrypt's for its directories), changed by
// [rate_limits."CA"].
func newBudget(cfg *config.Config, store certfleet.RateLimitStore, log *slog.Logger) *ratelimit.Budget {
	b := &ratelimit.Budget{Store: store, Accounts: make(map[string]ratelimit.Account, len(cfg.Accounts)), Logger: log}
	for name, acct := range cfg.Accounts {
		limits := caLimits(cfg, acct.Directory)
		b.Accounts[name] = ratelimit.Account{CA: acct.Directory, Limits: limits}
		if !limits.IsZero() {
			log.Debug("rate-limit budget", "account", name, certfleet.LogCA, acct.Directory,
				"new_orders_per_account", limits.NewOrdersPerAccount.String(),
				"certificates_per_domain", limits.CertificatesPerDomain.String(),
				"certificates_per_name_set", limits.CertificatesPerNameSet.String(),
				"failed_validations_per_name", limits.FailedValidationsPerName.String())
		}
	}
	// A [rate_limits."CA"] table no account uses is most likely a typo
	// (a trailing slash, another path): say so rather than ignore it.
	used := make(map[string]bool, len(cfg.Accounts))
	for _, acct := range cfg.Accounts {
		used[acct.Directory] = true
	}
	for _, dir := range slices.Sorted(maps.Keys(cfg.RateLimits)) {
		if !used[dir] {
			log.Warn("[rate_limits] table matches no account's CA directory, so it limits nothing; check its spelling against the accounts' directory URLs",
				"rate_limits", dir)
		}
	}
	return b
}

// caLimits returns the limits of the CA at dir: its defaults, with what
// the config sets in their place.
func caLimits(cfg *config.Config, dir string) ratelimit.Limits {
	l := ratelimit.Defaults(dir)
	set, ok := cfg.RateLimits[dir]
	if !ok {
		return l
	}
	for _, f := range []struct {
		from *config.RateLimit
		to   *ratelimit.Limit
	}{
		{set.NewOrdersPerAccount, &l.NewOrdersPerAccount},
		{set.CertificatesPerDomain, &l.CertificatesPerDomain},
		{set.CertificatesPerNameSet, &l.CertificatesPerNameSet},
		{set.FailedValidationsPerName, &l.FailedValidationsPerName},
	} {
		if f.from != nil {
			*f.to = ratelimit.Limit{Count: f.from.Count, Window: f.from.Window}
		}
	}
	return l
}
