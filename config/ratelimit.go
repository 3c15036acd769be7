package config

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rateLimitKeys are the keys of a [rate_limits."CA"] table.
var rateLimitKeys = []string{"new_orders_per_account", "certificates_per_domain", "certificates_per_name_set", "failed_validations_per_name"}

// RateLimit is one configured limit: Count per Window; a zero Count turns
// the limit off ("none").
type RateLimit struct {
	Count  int
	Window time.Duration
}

// RateLimits are the limits configured for one CA in
// [rate_limits."<directory URL or alias>"]. A nil field keeps the CA's
// default: Let's Encrypt's published limits for its production and staging
// directories, none for other CAs (see package ratelimit).
type RateLimits struct {
	NewOrdersPerAccount      *RateLimit
	CertificatesPerDomain    *RateLimit
	CertificatesPerNameSet   *RateLimit
	FailedValidationsPerName *RateLimit
}

// rateLimits decodes [rate_limits], keyed by resolved directory URL.
func (d *decoder) rateLimits(top *table, cfg *Config) {
	t := d.subtable(top, "rate_limits")
	if t == nil {
		return
	}
	cfg.RateLimits = make(map[string]RateLimits)
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		ct := d.subtable(t, name)
		if ct == nil {
			continue
		}
		dir, err := resolveDirectory(name)
		if err != nil {
			d.problemf(ct.p, "%v: name the CA by its directory URL or alias, as in [rate_limits.letsencrypt]", err)
			continue
		}
		if _, dup := cfg.RateLimits[dir]; dup {
			d.problemf(ct.p, "the limits of %s are already given (an alias and its URL name the same CA)", dir)
			continue
		}
		var rl RateLimits
		for i, dst := range []**RateLimit{
			&rl.NewOrdersPerAccount, &rl.CertificatesPerDomain, &rl.CertificatesPerNameSet, &rl.FailedValidationsPerName,
		} {
			key := rateLimitKeys[i]
			s, p, ok := d.str(ct, key)
			if !ok {
				continue
			}
			l, msg := parseRateLimit(s)
			if msg != "" {
				d.problemf(p, "%q: %s", s, msg)
				continue
			}
			*dst = &l
		}
		d.unknown(ct, rateLimitKeys)
		cfg.RateLimits[dir] = rl
	}
}

// parseRateLimit parses "COUNT/WINDOW" ("300/3h", "50/7d") or "none"; msg
// says what is wrong.
func parseRateLimit(s string) (RateLimit, string) {
	const how = `write COUNT/WINDOW, as in "50/7d" or "300/3h", or "none" for no limit`
	if strings.EqualFold(s, "none") {
		return RateLimit{}, ""
	}
	num, win, ok := strings.Cut(s, "/")
	if !ok {
		return RateLimit{}, how
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 1 || n > 1_000_000 {
		return RateLimit{}, "the count must be a whole number from 1 to 1000000; " + how
	}
	w, err := ParseDuration(strings.TrimSpace(win))
	if err != nil {
		return RateLimit{}, err.Error()
	}
	if w < time.Second || w > 366*24*time.Hour {
		return RateLimit{}, "the window must be from 1s to 366d"
	}
	return RateLimit{Count: n, Window: w}, ""
}
