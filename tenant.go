package certfleet

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Tenants (issue 12): one certfleet shared by many customers of a hosting
// company. A tenant owns the name patterns it may request, its API tokens
// (Token.Tenant), the certificates requested for it (CertificateSpec.Tenant),
// an ACME account (its own or the shared default) and quotas, so that no
// customer reads another's keys or spends the budgets of all. The operator
// (the config file, tokens without a tenant) is the implicit tenant "".

// Tenant is a customer of a shared certfleet.
type Tenant struct {
	// Name identifies the tenant (ValidateTenantName); it is what tokens
	// and certificates refer to.
	Name string `json:"name"`
	// Description says who it is ("customer 4711, Example GmbH").
	Description string `json:"description,omitempty"`
	// Names are the name patterns the tenant may request, as a token's
	// ("example.org", "*.example.org"); "*" is the operator's alone. No
	// two tenants' patterns overlap, so a name is never two customers'.
	Names []string `json:"names"`
	// Account names the ACME account its certificates are ordered with:
	// an [accounts.NAME] of the config, or one declared at runtime
	// (AccountSettings). "" is the shared DefaultAccount.
	Account string `json:"account,omitempty"`
	// MaxNames bounds the identifiers of the tenant's certificates
	// together (a request that would exceed it is refused); 0 is no limit.
	MaxNames int `json:"max_names,omitempty"`
	// OrdersPerWeek bounds the new orders placed for the tenant in any 7
	// days (renewals the CA exempts, those with ARI "replaces", do not
	// count): over it, work is deferred, never ordered. 0 is no limit.
	OrdersPerWeek int       `json:"orders_per_week,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

// MaxTenantNames bounds a tenant's name patterns: a control panel adds a
// customer's domains one at a time; thousands would be a bulk import better
// made into several tenants.
const MaxTenantNames = 1000

var tenantNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateTenantName checks a tenant's name: 1 to 64 lower-case letters,
// digits, '.', '_' or '-', starting with a letter or digit.
func ValidateTenantName(name string) error {
	if !tenantNameRE.MatchString(name) {
		return Errorf(EINVALID, "tenant name %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks a tenant as a whole; the error (EINVALID) names the first
// problem.
func (t Tenant) Validate() error {
	if err := ValidateTenantName(t.Name); err != nil {
		return err
	}
	if len(t.Names) == 0 {
		return Errorf(EINVALID, "tenant %q: give at least one name pattern it may request (\"example.org\", \"*.example.org\")", t.Name)
	}
	if len(t.Names) > MaxTenantNames {
		return Errorf(EINVALID, "tenant %q: %d name patterns; at most %d", t.Name, len(t.Names), MaxTenantNames)
	}
	for i, p := range t.Names {
		if p == "*" {
			return Errorf(EINVALID, "tenant %q: the pattern \"*\" covers every name, which only the operator may; give the customer's domains", t.Name)
		}
		if err := ValidateNamePattern(p); err != nil {
			return Errorf(EINVALID, "tenant %q: %v", t.Name, err)
		}
		for _, q := range t.Names[:i] {
			if PatternsOverlap(p, q) {
				return Errorf(EINVALID, "tenant %q: the patterns %q and %q overlap; list each name once", t.Name, q, p)
			}
		}
	}
	if t.Account != "" {
		if err := ValidateAccountName(t.Account); err != nil {
			return Errorf(EINVALID, "tenant %q: %v", t.Name, err)
		}
	}
	if t.MaxNames < 0 || t.OrdersPerWeek < 0 {
		return Errorf(EINVALID, "tenant %q: quotas must not be negative (0 is no limit)", t.Name)
	}
	if len(t.Description) > 1000 {
		return Errorf(EINVALID, "tenant %q: the description is longer than 1000 bytes", t.Name)
	}
	return nil
}

// Covers reports whether name (a normalised identifier value) is within the
// tenant's name patterns.
func (t Tenant) Covers(name string) bool {
	return slices.ContainsFunc(t.Names, func(p string) bool { return MatchNamePattern(p, name) })
}

// AccountName returns t.Account, or DefaultAccount when it is empty.
func (t Tenant) AccountName() string {
	if t.Account == "" {
		return DefaultAccount
	}
	return t.Account
}

// PatternsOverlap reports whether some name is covered by both name
// patterns: one covers the other ("*.example.org" and "www.example.org",
// "*.example.org" and "*.shop.example.org").
func PatternsOverlap(a, b string) bool {
	return MatchNamePattern(a, b) || MatchNamePattern(b, a)
}

// TenantUsage is what a tenant uses of its quotas now.
type TenantUsage struct {
	// Names counts the identifiers of the tenant's certificates that are
	// not withdrawn; Certificates counts those certificates.
	Names        int `json:"names"`
	Certificates int `json:"certificates"`
}

// TenantDeletion reports what DeleteTenant did besides deleting the tenant.
type TenantDeletion struct {
	// Withdrawn are the certificates withdrawn with it (withdraw only):
	// no longer renewed, their archive kept, nothing revoked.
	Withdrawn []string `json:"withdrawn,omitempty"`
	// TokensRevoked are the tenant's tokens, revoked with it.
	TokensRevoked []string `json:"tokens_revoked,omitempty"`
}

// ErrOverQuota is the error of a request that would take a tenant over its
// MaxNames quota: it says what the quota is and how to raise it.
func ErrOverQuota(t Tenant, inUse, adding int) error {
	return Errorf(EQUOTA, "tenant %q may hold at most %d names and holds %d; this request would make %d. "+
		"Withdraw names it no longer needs (DELETE /v1/names/NAME), or ask the operator to raise max_names "+
		"(PATCH /v1/tenants/%s, certfleet tenant set %s max_names=N)", t.Name, t.MaxNames, inUse, inUse+adding, t.Name, t.Name)
}

// AccountSettings is an ACME account declared at runtime, over the API or
// with certfleet account create, rather than in the config file: which CA,
// the contact, External Account Binding. Every instance sees it at once (it
// is read from the store); an account name the config defines always
// means the config's account.
type AccountSettings struct {
	Name string `json:"name"`
	// Directory is the CA's directory URL (https).
	Directory string `json:"directory"`
	// Email is the contact address, or "".
	Email string `json:"email,omitempty"`
	// EABKeyID and EABHMACKey are the External Account Binding
	// credentials (RFC 8555 §7.3.4), both set or both empty. The MAC key
	// is sealed in the store like other secrets (so it needs a master
	// key), never logged, and never listed: AccountSettingsList and the
	// API leave it out.
	EABKeyID   string `json:"eab_key_id,omitempty"`
	EABHMACKey string `json:"-"`
	// TrustedRootsPEM are extra roots for the CA's own HTTPS (a private
	// CA), or nil for the system's.
	TrustedRootsPEM []byte    `json:"trusted_roots,omitempty"`
	CreatedAt       time.Time `json:"created_at,omitzero"`
	UpdatedAt       time.Time `json:"updated_at,omitzero"`
}

// LogValue keeps the MAC key out of logs.
func (a AccountSettings) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", a.Name), slog.String(LogCA, a.Directory), slog.String("eab_key_id", a.EABKeyID))
}

// Contact returns the account's contact URLs (RFC 8555 §7.3), or nil.
func (a AccountSettings) Contact() []string {
	if a.Email == "" {
		return nil
	}
	return []string{"mailto:" + a.Email}
}

var accountNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateAccountName checks an account's name, as the config's
// [accounts.NAME] does.
func ValidateAccountName(name string) error {
	if !accountNameRE.MatchString(name) {
		return Errorf(EINVALID, "account name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

var eabKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+={0,2}$`)

// Validate checks the settings; the error (EINVALID) never quotes the MAC
// key.
func (a AccountSettings) Validate() error {
	if err := ValidateAccountName(a.Name); err != nil {
		return err
	}
	if a.Name == DefaultAccount {
		return Errorf(EINVALID, "account %q is the config's [ca]; give another name", a.Name)
	}
	if !strings.HasPrefix(a.Directory, "https://") || len(a.Directory) <= len("https://") {
		return Errorf(EINVALID, "account %q: directory %q is not an https:// URL of a CA's ACME directory", a.Name, a.Directory)
	}
	if a.Email != "" && (strings.ContainsAny(a.Email, " <>,;\"") || !strings.Contains(a.Email, "@")) {
		return Errorf(EINVALID, "account %q: %q is not an email address", a.Name, a.Email)
	}
	if (a.EABKeyID == "") != (a.EABHMACKey == "") {
		return Errorf(EINVALID, "account %q: External Account Binding needs both eab_key_id and eab_hmac_key", a.Name)
	}
	if a.EABHMACKey != "" && !eabKeyRE.MatchString(a.EABHMACKey) {
		return Errorf(EINVALID, "account %q: eab_hmac_key is not a base64url string as the CA issued it (the value is a secret and not shown)", a.Name)
	}
	if len(a.TrustedRootsPEM) > 1<<20 {
		return Errorf(EINVALID, "account %q: trusted_roots is larger than 1 MiB", a.Name)
	}
	return nil
}

// TenantStore keeps tenants and the ACME accounts declared at runtime. Safe
// for concurrent use (several instances too); durable when a method
// returns. Writes of tenants are serialised with the writes of specs, so
// the checks below hold across instances.
type TenantStore interface {
	// CreateTenant stores a new tenant (CreatedAt and UpdatedAt set to
	// now). ECONFLICT when the name is taken or a pattern overlaps another
	// tenant's; EINVALID when t is not valid.
	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// UpdateTenant replaces the tenant of t.Name (CreatedAt kept).
	// ENOTFOUND when there is none; ECONFLICT as CreateTenant. Narrowing
	// the patterns or lowering the quotas leaves what the tenant holds.
	UpdateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// Tenant returns one tenant, or ENOTFOUND: one indexed lookup.
	Tenant(ctx context.Context, name string) (Tenant, error)
	// Tenants lists every tenant by name.
	Tenants(ctx context.Context) ([]Tenant, error)
	// TenantUsage counts what the tenant's certificates hold.
	TenantUsage(ctx context.Context, name string) (TenantUsage, error)
	// DeleteTenant deletes the tenant and revokes its tokens. While it
	// has certificates that are not withdrawn it refuses with ECONFLICT,
	// naming them, unless withdraw is set: then they are withdrawn in the
	// same transaction (their archive stays; nothing is revoked at the
	// CA). ENOTFOUND when there is no such tenant.
	DeleteTenant(ctx context.Context, name string, withdraw bool) (TenantDeletion, error)

	// PutAccountSettings creates or replaces the account settings of
	// a.Name (CreatedAt kept, UpdatedAt now). A MAC key is sealed; a
	// store without a master key refuses one (EINVALID).
	PutAccountSettings(ctx context.Context, a AccountSettings) (AccountSettings, error)
	// AccountSettings returns one account's settings, MAC key included,
	// or ENOTFOUND.
	AccountSettings(ctx context.Context, name string) (AccountSettings, error)
	// AccountSettingsList lists every declared account by name, without
	// MAC keys.
	AccountSettingsList(ctx context.Context) ([]AccountSettings, error)
	// DeleteAccountSettings deletes a declared account. ECONFLICT while a
	// tenant or a certificate that is not withdrawn orders with it;
	// ENOTFOUND when there is none. The ACME registration itself stays
	// stored (certfleet account list).
	DeleteAccountSettings(ctx context.Context, name string) error
}

// CheckTenantPatterns checks that t's patterns overlap none of the others'
// (ECONFLICT, naming both), the rule CreateTenant and UpdateTenant enforce.
func CheckTenantPatterns(t Tenant, others []Tenant) error {
	for _, o := range others {
		if o.Name == t.Name {
			continue
		}
		for _, p := range t.Names {
			for _, q := range o.Names {
				if PatternsOverlap(p, q) {
					return Errorf(ECONFLICT, "tenant %q: the pattern %q overlaps %q of tenant %q; a name can belong to one tenant only", t.Name, p, q, o.Name)
				}
			}
		}
	}
	return nil
}

// String describes a tenant for the audit trail and the CLI.
func (t Tenant) String() string {
	q := func(n int) string {
		if n == 0 {
			return "no limit"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("tenant %s: names %s; account %s; max_names %s; orders_per_week %s",
		t.Name, strings.Join(t.Names, ","), t.AccountName(), q(t.MaxNames), q(t.OrdersPerWeek))
}

// CheckTenantToken checks a token made for tenant t: every name pattern of
// the token within the tenant's, and no admin permission (administration
// is the operator's). The error is EINVALID and says what to change.
func CheckTenantToken(tok Token, t Tenant) error {
	if slices.Contains(tok.Permissions, PermAdmin) {
		return Errorf(EINVALID, "a token of tenant %q cannot hold the admin permission: tenants are administered by the operator; give read-certs, read-keys or request-names", t.Name)
	}
	if len(tok.Names) == 0 {
		return Errorf(EINVALID, "a token of tenant %q needs name patterns; the tenant's are %s", t.Name, strings.Join(t.Names, ", "))
	}
	for _, p := range tok.Names {
		if !t.Covers(p) {
			return Errorf(EINVALID, "name pattern %q is not within tenant %q's names (%s)", p, t.Name, strings.Join(t.Names, ", "))
		}
	}
	return nil
}
