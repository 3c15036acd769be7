package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

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

// deferral returns the reason a job is waiting for a rate-limit budget, if
// its latest attempt was deferred and the deferral still holds.
func deferral(ctx context.Context, store certfleet.Store, j certfleet.Job, now time.Time) (string, error) {
	if !j.NextAt.After(now) || j.Disabled {
		return "", nil
	}
	atts, err := store.Attempts(ctx, j.JobKey, 1)
	if err != nil {
		return "", fmt.Errorf("attempts of %s: %w", j.JobKey, err)
	}
	if len(atts) == 0 || atts[0].Outcome != certfleet.OutcomeDeferred {
		return "", nil
	}
	return atts[0].Error, nil
}

// printRateHolds lists the accounts a CA asked to wait (rateLimited), if
// any.
func printRateHolds(ctx context.Context, w io.Writer, store certfleet.RateLimitStore, now time.Time) error {
	holds, err := store.RateHolds(ctx, now)
	if err != nil {
		return fmt.Errorf("list rate-limit holds: %w", err)
	}
	if len(holds) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nCA rate limits in force (no new orders for these accounts until then):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tCA\tUNTIL\tSINCE\tCA SAID")
	for _, h := range holds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Account, h.CA, fmtTime(h.Until), fmtTime(h.SetAt), oneLine(strings.TrimSpace(h.Reason), 120))
	}
	return tw.Flush()
}
