// Package ratelimit keeps certfleet inside a CA's rate limits: it implements
// certfleet.Budget on a certfleet.RateLimitStore. Before each new order it
// reserves the order's share of every configured limit — new orders per
// account, certificates per registered domain, certificates per exact set
// of names — and checks the recent failed validations of each name; when
// one is exhausted the order is not placed and the job waits in the
// budget's queue until its turn. A rateLimited answer from the CA becomes
// a hold on the account until its Retry-After, kept in the store across
// restarts.
//
// Let's Encrypt's published limits are the defaults for its production and
// staging directories (LetsEncrypt); other CAs have none unless configured.
// See docs/ratelimits.md for what is counted and why.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/certfleet/certfleet"
)

// Limit allows Count events per Window; a zero Count is no limit.
type Limit struct {
	Count  int
	Window time.Duration
}

// Enabled reports whether the limit limits anything.
func (l Limit) Enabled() bool { return l.Count > 0 && l.Window > 0 }

func (l Limit) String() string {
	if !l.Enabled() {
		return "none"
	}
	return fmt.Sprintf("%d/%s", l.Count, FormatWindow(l.Window))
}

// Limits are the rate limits of one CA, as certfleet tracks them.
type Limits struct {
	// NewOrdersPerAccount counts new orders placed by one account.
	NewOrdersPerAccount Limit
	// CertificatesPerDomain counts certificates per registered domain
	// (public suffix plus one label; an IPv4 address, or the /64 of an
	// IPv6 address, is its own registered domain), whatever the account.
	CertificatesPerDomain Limit
	// CertificatesPerNameSet counts certificates for one exact set of
	// identifiers (case and order ignored), whatever the account.
	CertificatesPerNameSet Limit
	// FailedValidationsPerName counts failed validations of one
	// identifier by one account.
	FailedValidationsPerName Limit
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool {
	return !l.NewOrdersPerAccount.Enabled() && !l.CertificatesPerDomain.Enabled() &&
		!l.CertificatesPerNameSet.Enabled() && !l.FailedValidationsPerName.Enabled()
}

// Let's Encrypt's directories.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// LetsEncrypt returns Let's Encrypt's published limits
// (https://letsencrypt.org/docs/rate-limits/, as of 2025): 300 new orders
// per account per 3 hours, 50 certificates per registered domain per 7
// days, 5 certificates per exact set of identifiers per 7 days, 5 failed
// validations per identifier per account per hour.
func LetsEncrypt() Limits {
	return Limits{
		NewOrdersPerAccount:      Limit{Count: 300, Window: 3 * time.Hour},
		CertificatesPerDomain:    Limit{Count: 50, Window: 7 * 24 * time.Hour},
		CertificatesPerNameSet:   Limit{Count: 5, Window: 7 * 24 * time.Hour},
		FailedValidationsPerName: Limit{Count: 5, Window: time.Hour},
	}
}

// Defaults returns the limits of a CA by its directory URL: Let's Encrypt's
// for its production and staging directories (staging's own limits are
// higher; using production's makes a rehearsal on staging defer what
// production would), none for any other CA.
func Defaults(directoryURL string) Limits {
	switch strings.TrimRight(directoryURL, "/") {
	case LetsEncryptProduction, LetsEncryptStaging:
		return LetsEncrypt()
	}
	return Limits{}
}

// TenantWindow is the window of a tenant's orders_per_week quota.
const TenantWindow = 7 * 24 * time.Hour

// DefaultHold is how long a rateLimited answer without a Retry-After holds
// the account back.
const DefaultHold = time.Hour

// pruneInterval is how often old log entries are deleted.
const pruneInterval = time.Hour

// Account is what the budget knows of one configured account.
type Account struct {
	CA     string // directory URL
	Limits Limits
}

// Budget implements certfleet.Budget. Set the fields before first use.
type Budget struct {
	Store certfleet.RateLimitStore
	// Accounts maps account names (certfleet.CertificateSpec.AccountName)
	// to their CA and its limits. Holds apply to every account listed;
	// an account not listed is not limited at all.
	Accounts map[string]Account
	// Logger receives deferrals and holds; nil discards.
	Logger *slog.Logger
	// Resolve, if set, returns the CA and limits of an account Accounts
	// does not list (declared at runtime, issue 12); ok false leaves it
	// unlimited, as an unlisted account.
	Resolve func(ctx context.Context, account string) (acct Account, ok bool, err error)
	// TenantQuota, if set, returns the orders-per-week quota of a tenant
	// (OrderIntent.Tenant); a Limit that is not Enabled is no quota. The
	// tenant's new orders are counted in the bucket "tenant|NAME" of the
	// account's CA, with the CA's own limits and in the same reservation,
	// and are never refunded: every order placed counts. Renewals the CA
	// exempts (ARI "replaces") do not count, so a tenant at its quota
	// still renews what it has.
	TenantQuota func(ctx context.Context, tenant string) (Limit, error)

	mu        sync.Mutex
	lastPrune time.Time
	resolved  map[string]Account // guarded by mu: accounts Resolve returned, for prune
}

var _ certfleet.Budget = (*Budget)(nil)

// Limit kinds: the machine-readable reason of a deferral (the Event's
// Reason, DeferError.Limit).
const (
	KindNewOrders         = "new_orders_per_account"
	KindPerDomain         = "certificates_per_domain"
	KindPerNameSet        = "certificates_per_name_set"
	KindFailedValidations = "failed_validations_per_name"
	KindCAHold            = "ca_rate_limited"
	KindTenantOrders      = "tenant_orders_per_week"
)

var kindOfBucket = map[string]string{
	"orders": KindNewOrders, "domain": KindPerDomain, "names": KindPerNameSet, "failed": KindFailedValidations,
	"tenant": KindTenantOrders,
}

func (b *Budget) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// Check implements certfleet.Budget: Reserve's verdict, with nothing
// taken. A job it defers waits in the budget's queue as Reserve's would.
func (b *Budget) Check(ctx context.Context, o certfleet.OrderIntent) error {
	_, err := b.reserve(ctx, o, true)
	return err
}

// Reserve implements certfleet.Budget.
func (b *Budget) Reserve(ctx context.Context, o certfleet.OrderIntent) (certfleet.Reservation, error) {
	return b.reserve(ctx, o, false)
}

// account returns the budget's account of name: Accounts', else
// Resolve's.
func (b *Budget) account(ctx context.Context, name string) (Account, bool, error) {
	if acct, ok := b.Accounts[name]; ok || b.Resolve == nil {
		return acct, ok, nil
	}
	acct, ok, err := b.Resolve(ctx, name)
	if err != nil || !ok {
		return acct, false, err
	}
	b.mu.Lock()
	if b.resolved == nil {
		b.resolved = make(map[string]Account)
	}
	b.resolved[name] = acct
	b.mu.Unlock()
	return acct, true, nil
}

// tenantLimit returns the limit of o's tenant quota, if it has one and o
// counts against it.
func (b *Budget) tenantLimit(ctx context.Context, o certfleet.OrderIntent) (*certfleet.BudgetLimit, error) {
	if o.Tenant == "" || o.Renewal || b.TenantQuota == nil {
		return nil, nil
	}
	l, err := b.TenantQuota(ctx, o.Tenant)
	if err != nil || !l.Enabled() {
		return nil, err
	}
	return &certfleet.BudgetLimit{Bucket: "tenant|" + o.Tenant, Limit: l.Count, Window: l.Window,
		Name: fmt.Sprintf("new orders of tenant %q (its quota: orders_per_week = %d; the operator raises it with certfleet tenant set %s orders_per_week=N)",
			o.Tenant, l.Count, o.Tenant)}, nil
}

func (b *Budget) reserve(ctx context.Context, o certfleet.OrderIntent, check bool) (certfleet.Reservation, error) {
	acct, ok, err := b.account(ctx, o.Account)
	if err != nil || !ok {
		return certfleet.Reservation{}, err
	}
	holds, err := b.Store.RateHolds(ctx, o.At)
	if err != nil {
		return certfleet.Reservation{}, err
	}
	for _, h := range holds {
		if h.CA == acct.CA && h.Account == o.Account {
			return certfleet.Reservation{}, &certfleet.DeferError{Limit: KindCAHold, Until: h.Until,
				Reason: fmt.Sprintf("the CA %s answered rateLimited for account %q at %s and asked to wait until then: %s",
					h.CA, h.Account, h.SetAt.UTC().Format(time.RFC3339), h.Reason)}
		}
	}
	limits := Request(acct.Limits, o)
	tl, err := b.tenantLimit(ctx, o)
	if err != nil {
		return certfleet.Reservation{}, err
	}
	if tl != nil {
		limits = append(limits, *tl)
	}
	if len(limits) == 0 {
		return certfleet.Reservation{}, nil
	}
	if !check {
		b.prune(ctx, o.At)
	}
	res, err := b.Store.ReserveBudget(ctx, certfleet.BudgetRequest{CA: acct.CA, Job: o.Job, At: o.At, Limits: limits, Check: check})
	if err != nil {
		return certfleet.Reservation{}, err
	}
	if !res.OK {
		kind, _, _ := strings.Cut(res.Blocked.Bucket, "|")
		reason := fmt.Sprintf("rate-limit budget of %s exhausted: %s, %d of %d used in the last %s",
			acct.CA, res.Blocked.Name, res.Count, res.Blocked.Limit, FormatWindow(res.Blocked.Window))
		if w := res.Wait; w != nil {
			reason += fmt.Sprintf("; waiting in its queue since %s at place %d, turn at %s",
				w.Since.UTC().Format(time.RFC3339), w.Place, w.Turn.UTC().Format(time.RFC3339))
		}
		return certfleet.Reservation{}, &certfleet.DeferError{Limit: kindOfBucket[kind], Until: res.Until, Reason: reason, Wait: res.Wait}
	}
	r := certfleet.Reservation{ID: res.Reservation, Released: res.Released}
	if res.Released != nil {
		kind, _, _ := strings.Cut(res.Released.Bucket, "|")
		r.ReleasedLimit = kindOfBucket[kind]
	}
	return r, nil
}

// Finish implements certfleet.Budget.
func (b *Budget) Finish(ctx context.Context, o certfleet.OrderIntent, reservation int64, err error) {
	if err == nil {
		return
	}
	acct, ok, aerr := b.account(ctx, o.Account)
	if aerr != nil {
		b.logger().Error("rate-limit budget: look up account", "account", o.Account, certfleet.LogError, aerr)
	}
	if !ok {
		return
	}
	if _, deferred := certfleet.AsDeferError(err); deferred {
		return
	}
	log := b.logger().With(certfleet.LogCertificate, o.Job.Spec, certfleet.LogKeyType, string(o.Job.KeyType))
	name, failedValidation := certfleet.FailedIdentifier(err)
	if reservation != 0 && (failedValidation || o.OrderURL == "") {
		// No certificate came of it and none can (the order is invalid,
		// or none was placed): give the certificate budgets back. An
		// order left pending may still be resumed and issued, so its
		// share stays taken.
		if rerr := b.Store.RefundBudget(ctx, reservation); rerr != nil {
			log.Error("refund rate-limit budget", certfleet.LogError, rerr)
		}
	}
	if failedValidation && acct.Limits.FailedValidationsPerName.Enabled() {
		if rerr := b.Store.RecordBudgetEvent(ctx, acct.CA, failedBucket(o.Account, name), o.At); rerr != nil {
			log.Error("record failed validation", certfleet.LogIdentifier, name, certfleet.LogError, rerr)
		}
	}
	if certfleet.ErrorCode(err) == certfleet.ERATELIMITED || certfleet.ProblemType(err) == "urn:ietf:params:acme:error:rateLimited" {
		until, ok := certfleet.RetryAfter(err)
		if !ok || !until.After(o.At) {
			until = o.At.Add(DefaultHold)
		}
		h := certfleet.RateHold{CA: acct.CA, Account: o.Account, Until: until, Reason: certfleet.ErrorMessage(err), SetAt: o.At}
		if h.Reason == "internal error" {
			h.Reason = err.Error()
		}
		if rerr := b.Store.SetRateHold(ctx, h); rerr != nil {
			log.Error("store the CA's rate-limit hold", certfleet.LogError, rerr)
			return
		}
		log.Warn("the CA is rate limiting this account: no new orders for it until the time it gave",
			"account", o.Account, "until", until, certfleet.LogError, err)
	}
}

// prune deletes log entries older than every window, at most once per
// pruneInterval.
func (b *Budget) prune(ctx context.Context, now time.Time) {
	b.mu.Lock()
	if now.Sub(b.lastPrune) < pruneInterval {
		b.mu.Unlock()
		return
	}
	b.lastPrune = now
	accounts := slices.Collect(maps.Values(b.resolved))
	b.mu.Unlock()
	var longest time.Duration
	if b.TenantQuota != nil {
		longest = TenantWindow
	}
	for _, a := range append(slices.Collect(maps.Values(b.Accounts)), accounts...) {
		for _, l := range []Limit{a.Limits.NewOrdersPerAccount, a.Limits.CertificatesPerDomain,
			a.Limits.CertificatesPerNameSet, a.Limits.FailedValidationsPerName} {
			longest = max(longest, l.Window)
		}
	}
	n, err := b.Store.PruneBudget(ctx, now.Add(-longest))
	if err != nil {
		b.logger().Warn("prune the rate-limit log", certfleet.LogError, err)
	} else if n > 0 {
		b.logger().Debug("pruned the rate-limit log", "rows", n)
	}
}

// Request returns the limits a new order o is checked against. A renewal
// carrying ARI "replaces" is exempt from the issuance limits (new orders,
// per domain, per name set), as Let's Encrypt exempts it; the failed
// validations of its names are still checked.
func Request(l Limits, o certfleet.OrderIntent) []certfleet.BudgetLimit {
	var out []certfleet.BudgetLimit
	if !o.Renewal {
		if l.NewOrdersPerAccount.Enabled() {
			out = append(out, certfleet.BudgetLimit{Bucket: "orders|" + o.Account,
				Limit: l.NewOrdersPerAccount.Count, Window: l.NewOrdersPerAccount.Window,
				Name: fmt.Sprintf("new orders of account %q", o.Account)})
		}
		if l.CertificatesPerDomain.Enabled() {
			for _, d := range RegisteredDomains(o.Identifiers) {
				out = append(out, certfleet.BudgetLimit{Bucket: "domain|" + d,
					Limit: l.CertificatesPerDomain.Count, Window: l.CertificatesPerDomain.Window,
					Name: fmt.Sprintf("certificates for registered domain %s", d), Refundable: true})
			}
		}
		if l.CertificatesPerNameSet.Enabled() && len(o.Identifiers) > 0 {
			out = append(out, certfleet.BudgetLimit{Bucket: "names|" + NameSetKey(o.Identifiers),
				Limit: l.CertificatesPerNameSet.Count, Window: l.CertificatesPerNameSet.Window,
				Name: fmt.Sprintf("certificates for exactly %s", describeSet(o.Identifiers)), Refundable: true})
		}
	}
	if l.FailedValidationsPerName.Enabled() {
		for _, v := range uniqueValues(o.Identifiers) {
			out = append(out, certfleet.BudgetLimit{Bucket: failedBucket(o.Account, v),
				Limit: l.FailedValidationsPerName.Count, Window: l.FailedValidationsPerName.Window,
				Name: fmt.Sprintf("failed validations of %s by account %q", v, o.Account), CheckOnly: true})
		}
	}
	return out
}

func failedBucket(account, name string) string {
	return "failed|" + account + "|" + strings.ToLower(name)
}

// RegisteredDomain returns what a CA's per-domain limit counts an
// identifier under: the public suffix plus one label for a DNS name (a
// wildcard counts as its base name; a name that is itself a public suffix,
// or has no known suffix, counts as itself), the address for IPv4, and the
// /64 prefix for IPv6 — as Let's Encrypt counts IP addresses.
func RegisteredDomain(id certfleet.Identifier) string {
	v := strings.ToLower(strings.TrimSuffix(id.Value, "."))
	if id.Type == certfleet.IdentifierIP {
		addr, err := netip.ParseAddr(v)
		if err != nil {
			return v
		}
		addr = addr.Unmap()
		if addr.Is4() {
			return addr.String()
		}
		p, _ := addr.Prefix(64)
		return p.String()
	}
	v = strings.TrimPrefix(v, "*.")
	d, err := publicsuffix.EffectiveTLDPlusOne(v)
	if err != nil {
		return v
	}
	return d
}

// RegisteredDomains returns the distinct registered domains of ids, sorted:
// a certificate counts once against each.
func RegisteredDomains(ids []certfleet.Identifier) []string {
	var out []string
	for _, id := range ids {
		d := RegisteredDomain(id)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// NameSetKey identifies an exact set of identifiers, case and order
// ignored: the hex SHA-256 of the sorted, distinct, lower-cased values.
func NameSetKey(ids []certfleet.Identifier) string {
	h := sha256.Sum256([]byte(strings.Join(uniqueValues(ids), "\n")))
	return hex.EncodeToString(h[:])
}

func uniqueValues(ids []certfleet.Identifier) []string {
	var out []string
	for _, id := range ids {
		v := strings.ToLower(id.Value)
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func describeSet(ids []certfleet.Identifier) string {
	v := uniqueValues(ids)
	if len(v) > 3 {
		return fmt.Sprintf("{%s, +%d more}", strings.Join(v[:3], ", "), len(v)-3)
	}
	return "{" + strings.Join(v, ", ") + "}"
}

// FormatWindow prints a window in the units the config uses ("7d", "3h").
func FormatWindow(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
