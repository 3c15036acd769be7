package certfleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Spec sources: where a CertificateSpec was declared. Syncing the config file
// disables only the specs it owns, never those added over the API.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// CertificateSpec is what an operator asked for: a named set of identifiers to
// be certified with one or more key types. Each key type gets its own
// certificate (dual certificates: one RSA and one ECDSA) and its own Job.
type CertificateSpec struct {
	// Name identifies the spec (unique; letters, digits, '.', '_', '-').
	Name string `json:"name"`
	// Identifiers are the DNS names and IP addresses, normalised, at most
	// MaxIdentifiers of them.
	Identifiers []Identifier `json:"identifiers"`
	// KeyTypes holds one key type, or two of different families (dual).
	KeyTypes []KeyType `json:"key_types"`
	// Challenge is the challenge type used to prove control of every
	// identifier.
	Challenge ChallengeType `json:"challenge"`
	// Profile is the ACME profile to request (draft-aaron-acme-profiles);
	// "" lets the CA choose its default.
	Profile string `json:"profile,omitempty"`
	// Account names the ACME account (and so the CA) to order with; "" is
	// DefaultAccount.
	Account string `json:"account,omitempty"`
	// RenewBefore, when non-zero, renews this long before expiry (or earlier,
	// when ARI suggests it). Zero means automatic: ARI, else a third of the
	// lifetime before expiry (half for certificates of 10 days or less).
	RenewBefore time.Duration `json:"renew_before,omitempty"`
	// RenewAfter, when non-zero, renews once the certificate is this old
	// (or earlier, by the rules above): renewal by age. Zero: not used.
	// Neither margin can make a renewal start later than LatestStart.
	RenewAfter time.Duration `json:"renew_after,omitempty"`
	// ReuseKey keeps the private key across renewals. The default (false)
	// makes a new key at every renewal.
	ReuseKey bool `json:"reuse_key,omitempty"`
	// CSR, when set, puts the spec in CSR mode: a PEM certificate request
	// from a host that keeps its own private key. Orders finalize with it,
	// no key is made or stored, and KeyTypes holds the CSR key's type.
	// Submitting another CSR re-issues (it is part of the Revision).
	CSR []byte `json:"csr,omitempty"`
	// Tenant is the customer the certificate belongs to (issue 12); ""
	// is the operator's. Only the tenant's tokens (and the operator's)
	// see it, and its orders count against the tenant's quotas.
	Tenant string `json:"tenant,omitempty"`
	// DNSProvider names the [dns01.providers] entry that writes the
	// records of a dns-01 certificate requested over the API; "" routes
	// by identifier as the config does (its dns_provider, [defaults]).
	DNSProvider string `json:"dns_provider,omitempty"`
	// Webroot names a web root of the config's [webroots] for a webroot
	// certificate requested over the API; config certificates keep their
	// directory in the config.
	Webroot string `json:"webroot,omitempty"`
	// Source says who declared the spec (SourceConfig or SourceAPI).
	// NoSelfTest turns off the self-test before orders (issue 14) for
	// this certificate: for names only the CA can reach. Not part of the
	// revision: switching it never triggers an order.
	NoSelfTest bool   `json:"no_self_test,omitempty"`
	Source     string `json:"source"`
	// Disabled specs are kept (with their archive) but no longer renewed.
	Disabled bool `json:"disabled,omitempty"`
}

// DefaultAccount is the account name used when a spec names none.
const DefaultAccount = "default"

var specNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName checks a spec name: it becomes a directory name, so it may not
// contain path separators or start with a dot.
func ValidateName(name string) error {
	if !specNameRE.MatchString(name) {
		return fmt.Errorf("certificate name %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks the spec as a whole; the error names the first problem.
func (s CertificateSpec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if len(s.Identifiers) == 0 {
		return fmt.Errorf("certificate %q: no identifiers", s.Name)
	}
	if len(s.Identifiers) > MaxIdentifiers {
		return fmt.Errorf("certificate %q: %d identifiers; a certificate may hold at most %d", s.Name, len(s.Identifiers), MaxIdentifiers)
	}
	seen := make(map[Identifier]bool)
	for _, id := range s.Identifiers {
		if seen[id] {
			return fmt.Errorf("certificate %q: identifier %q is listed twice", s.Name, id.Value)
		}
		seen[id] = true
		if err := s.Challenge.CanProve(id); err != nil {
			return fmt.Errorf("certificate %q: %w", s.Name, err)
		}
	}
	if len(s.KeyTypes) == 0 || len(s.KeyTypes) > 2 {
		return fmt.Errorf("certificate %q: give one key type, or two of different families (one RSA, one ECDSA) for dual certificates", s.Name)
	}
	for _, kt := range s.KeyTypes {
		if _, err := ParseKeyType(string(kt)); err != nil {
			return fmt.Errorf("certificate %q: %w", s.Name, err)
		}
	}
	if len(s.KeyTypes) == 2 && s.KeyTypes[0].Family() == s.KeyTypes[1].Family() {
		return fmt.Errorf("certificate %q: dual certificates need one RSA and one ECDSA key type, not %s and %s", s.Name, s.KeyTypes[0], s.KeyTypes[1])
	}
	if len(s.CSR) > 0 && len(s.KeyTypes) != 1 {
		return fmt.Errorf("certificate %q: a CSR-mode certificate has exactly one key type, the CSR's", s.Name)
	}
	if s.RenewBefore < 0 {
		return fmt.Errorf("certificate %q: renew_before must not be negative", s.Name)
	}
	if s.RenewAfter < 0 {
		return fmt.Errorf("certificate %q: renew_after must not be negative", s.Name)
	}
	if s.Tenant != "" {
		if err := ValidateTenantName(s.Tenant); err != nil {
			return fmt.Errorf("certificate %q: %w", s.Name, err)
		}
	}
	if s.DNSProvider != "" && s.Challenge != ChallengeDNS01 {
		return fmt.Errorf("certificate %q: dns_provider is for dns-01, not %s", s.Name, s.Challenge)
	}
	if s.Webroot != "" && s.Challenge != ChallengeWebroot {
		return fmt.Errorf("certificate %q: webroot is for the webroot challenge, not %s", s.Name, s.Challenge)
	}
	for _, f := range [...]struct{ key, v string }{{"dns_provider", s.DNSProvider}, {"webroot", s.Webroot}} {
		if f.v != "" && !specNameRE.MatchString(f.v) {
			return fmt.Errorf("certificate %q: %s %q: use letters, digits, '.', '_' or '-'", s.Name, f.key, f.v)
		}
	}
	return nil
}

// AccountName returns s.Account, or DefaultAccount when it is empty.
func (s CertificateSpec) AccountName() string {
	if s.Account == "" {
		return DefaultAccount
	}
	return s.Account
}

// Revision fingerprints what a certificate of key type kt must contain to
// satisfy s: its identifiers (as a set), key type, profile, account and
// tenant. A current certificate made for another revision is re-issued at
// once. Fields that do not change the certificate (challenge, renewal
// policy, DNS provider, web root) are left out, so editing them never
// triggers an order.
func (s CertificateSpec) Revision(kt KeyType) string {
	h := sha256.New()
	for _, id := range SortedIdentifiers(s.Identifiers) {
		fmt.Fprintf(h, "%s:%s\n", id.Type, id.Value)
	}
	fmt.Fprintf(h, "key=%s\nprofile=%s\naccount=%s\n", kt, s.Profile, s.AccountName())
	if len(s.CSR) > 0 { // only then, so other specs' revisions stay as they were
		fmt.Fprintf(h, "csr=%x\n", sha256.Sum256(s.CSR))
	}
	if s.Tenant != "" { // likewise: a certificate moved to another tenant is made anew, with a new key
		fmt.Fprintf(h, "tenant=%s\n", s.Tenant)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// JobKeys returns the key of the Job of each of the spec's key types.
func (s CertificateSpec) JobKeys() []JobKey {
	keys := make([]JobKey, len(s.KeyTypes))
	for i, kt := range s.KeyTypes {
		keys[i] = JobKey{Spec: s.Name, KeyType: kt}
	}
	return keys
}

// SpecFilter selects specs. Zero fields match everything.
type SpecFilter struct {
	Name            string
	Source          string
	Tenant          string // only this tenant's specs (served by an index)
	Prefix          string // only the specs whose name starts with it (an index range)
	IncludeDisabled bool
}

// SyncResult reports what SyncSpecs changed, for the operator.
type SyncResult struct {
	Added     []string // spec names new to the store
	Changed   []string // specs whose content changed
	Disabled  []string // specs of the source that are no longer declared
	Unchanged int
}

// String summarises the sync in one line.
func (r SyncResult) String() string {
	return fmt.Sprintf("%d added, %d changed, %d disabled, %d unchanged%s",
		len(r.Added), len(r.Changed), len(r.Disabled), r.Unchanged, listSuffix(r.Added, r.Changed, r.Disabled))
}

func listSuffix(lists ...[]string) string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	if len(all) == 0 || len(all) > 10 {
		return ""
	}
	return " (" + strings.Join(all, ", ") + ")"
}

// CheckSync validates the specs of a SpecStore.SyncSpecs call, the same for
// every store: the source is required, each spec must pass Validate, and no
// name may be declared twice. It returns copies with Source set; the error
// has the code EINVALID and names the first problem.
func CheckSync(source string, specs []CertificateSpec) ([]CertificateSpec, error) {
	if source == "" {
		return nil, Errorf(EINVALID, "sync specs: source required")
	}
	out := make([]CertificateSpec, 0, len(specs))
	listed := make(map[string]bool, len(specs))
	for _, sp := range specs {
		if err := sp.Validate(); err != nil {
			return nil, Errorf(EINVALID, "%v", err)
		}
		if listed[sp.Name] {
			return nil, Errorf(EINVALID, "certificate %q is declared twice", sp.Name)
		}
		listed[sp.Name] = true
		sp.Source = source
		out = append(out, sp)
	}
	return out, nil
}
