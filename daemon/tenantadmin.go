package daemon

// The operator's administration of tenants and declared accounts by hand
// (certfleet tenant, certfleet account declare|forget, certfleet token
// create -tenant): the same checks as the API's, each change recorded in
// the audit trail as the operator's (OperatorEvent).

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/httpapi"
)

// TenantHelp is the help of certfleet tenant.
const TenantHelp = `Manage the tenants of a shared certfleet (issue 12): the customers whose
control panel requests names over the API. A tenant owns the name patterns it
may request (never overlapping another tenant's), its tokens (certfleet token
create -tenant NAME), an ACME account, and quotas.

  certfleet tenant create -config FILE NAME names=PATTERNS [KEY=VALUE ...]
  certfleet tenant set    -config FILE NAME KEY=VALUE ...     (changes only those)
  certfleet tenant list   -config FILE
  certfleet tenant delete -config FILE [-withdraw] NAME

Settings: names (comma-separated patterns: "example.org", "*.example.org"),
account (an account of the config, or one declared with certfleet account
declare; default: the shared one), max_names and orders_per_week (quotas;
0 = no limit), description.

Deleting a tenant revokes its tokens; one that still has certificates is
refused unless -withdraw, which withdraws them too (their archive stays,
nothing is revoked at the CA). Every change is in the audit trail. The same
is served at /v1/tenants (docs/api.md).`

// AccountHelp is the help of certfleet account declare and forget.
const AccountHelp = `Declare an ACME account in the store, used at once by every instance
without a restart (tenants' own accounts), or forget one:

  certfleet account declare -config FILE NAME directory=URL [email=ADDRESS]
      [eab_key_id=KID eab_hmac_key_file=PATH] [trusted_roots=PEM-FILE]
  certfleet account forget -config FILE NAME

The EAB MAC key is read from a file (never the command line) and stored
sealed (the store needs a master key). An account name of the config is
refused: the config always wins. Forgetting an account a tenant or a
certificate uses is refused. Served at /v1/accounts too (docs/api.md).`

// settings parses KEY=VALUE arguments, each key at most once and one of
// keys.
func settings(args []string, keys ...string) (map[string]string, error) {
	out := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			return nil, certfleet.Errorf(certfleet.EINVALID, "%q: give KEY=VALUE (keys: %s)", a, strings.Join(keys, ", "))
		case !slices.Contains(keys, k):
			return nil, certfleet.Errorf(certfleet.EINVALID, "unknown setting %q (use %s)", k, strings.Join(keys, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, certfleet.Errorf(certfleet.EINVALID, "%s is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// ParseTenantSettings reads the KEY=VALUE settings of certfleet tenant
// create and set into the change they make.
func ParseTenantSettings(args []string) (httpapi.TenantUpdate, error) {
	var u httpapi.TenantUpdate
	kv, err := settings(args, "names", "account", "max_names", "orders_per_week", "description")
	if err != nil {
		return u, err
	}
	for k, v := range kv {
		switch k {
		case "names":
			var pats []string
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					pats = append(pats, p)
				}
			}
			u.Names = &pats
		case "account", "description":
			s := v
			if k == "account" {
				u.Account = &s
			} else {
				u.Description = &s
			}
		default:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return u, certfleet.Errorf(certfleet.EINVALID, "%s=%q: give a number, 0 for no limit", k, v)
			}
			if k == "max_names" {
				u.MaxNames = &n
			} else {
				u.OrdersPerWeek = &n
			}
		}
	}
	return u, nil
}

// tenantAdmin is a store with tenants, tokens and the audit trail.
type tenantAdmin interface {
	certfleet.TenantStore
	certfleet.TokenStore
	certfleet.EventSink
}

func asTenantAdmin(st certfleet.Store) (tenantAdmin, error) {
	ts, ok := st.(tenantAdmin)
	if !ok {
		return nil, fmt.Errorf("the %T store keeps no tenants", st)
	}
	return ts, nil
}

// checkAccountIn reports whether account name can order with cfg and ts:
// an account of the config, or one declared at runtime.
func checkAccountIn(ctx context.Context, cfg *config.Config, ts certfleet.TenantStore, name string) error {
	if _, ok := cfg.Accounts[name]; ok {
		return nil
	}
	if ts != nil {
		_, err := ts.AccountSettings(ctx, name)
		if err == nil || certfleet.ErrorCode(err) != certfleet.ENOTFOUND {
			return err
		}
	}
	return certfleet.Errorf(certfleet.EINVALID, "account %q is not configured: declare it (PUT /v1/accounts/%s, certfleet account declare) or use one of the config's (%s)",
		name, name, strings.Join(slices.Sorted(maps.Keys(cfg.Accounts)), ", "))
}

// TenantOutcome is what a certfleet tenant command did: the tenants to
// show (with their usage), and for a deletion what went with the tenant.
type TenantOutcome struct {
	Tenants []certfleet.Tenant
	Usage   []certfleet.TenantUsage
	Deleted *certfleet.TenantDeletion
}

// TenantCommand does what certfleet tenant VERB asks (TenantHelp) on st:
// create, set, list or delete, with args the tenant's name and its KEY=VALUE
// settings. The error is EINVALID for a wrong command line.
func TenantCommand(ctx context.Context, cfg *config.Config, st certfleet.Store, verb string, args []string, withdraw bool) (TenantOutcome, error) {
	var out TenantOutcome
	ts, err := asTenantAdmin(st)
	if err != nil {
		return out, err
	}
	if verb == "list" {
		if len(args) > 0 {
			return out, certfleet.Errorf(certfleet.EINVALID, "tenant list takes no arguments")
		}
		if out.Tenants, err = ts.Tenants(ctx); err != nil {
			return out, err
		}
		return out, out.usage(ctx, ts)
	}
	if !slices.Contains([]string{"create", "set", "delete"}, verb) || len(args) == 0 {
		return out, certfleet.Errorf(certfleet.EINVALID, "usage: certfleet tenant create|set|list|delete -config FILE [NAME [KEY=VALUE ...]] (see certfleet tenant --help)")
	}
	name := args[0]
	if verb == "delete" {
		if len(args) > 1 {
			return out, certfleet.Errorf(certfleet.EINVALID, "tenant delete takes the tenant's name only (flags go before it)")
		}
		res, err := ts.DeleteTenant(ctx, name, withdraw)
		if err != nil {
			return out, err
		}
		out.Deleted = &res
		return out, record(ctx, ts, OperatorEvent(certfleet.EventTenant, httpapi.DeletionDetail(name, res)), "tenant "+name+" deleted")
	}
	u, err := ParseTenantSettings(args[1:])
	if err != nil {
		return out, err
	}
	t := certfleet.Tenant{Name: name}
	if verb == "set" {
		if t, err = ts.Tenant(ctx, name); err != nil {
			return out, err
		}
	}
	t = u.Apply(t)
	if t.Account == certfleet.DefaultAccount {
		t.Account = ""
	}
	if err := t.Validate(); err != nil {
		return out, err
	}
	if err := checkAccountIn(ctx, cfg, ts, t.AccountName()); err != nil {
		return out, err
	}
	reason := "created"
	if verb == "create" {
		t, err = ts.CreateTenant(ctx, t)
	} else {
		t, err = ts.UpdateTenant(ctx, t)
		reason = "changed"
	}
	if err != nil {
		return out, err
	}
	out.Tenants = []certfleet.Tenant{t}
	e := OperatorEvent(certfleet.EventTenant, t.String())
	e.Reason = reason
	if err := record(ctx, ts, e, "tenant "+name+" "+reason); err != nil {
		return out, err
	}
	return out, out.usage(ctx, ts)
}

func (o *TenantOutcome) usage(ctx context.Context, ts certfleet.TenantStore) error {
	for _, t := range o.Tenants {
		u, err := ts.TenantUsage(ctx, t.Name)
		if err != nil {
			return err
		}
		o.Usage = append(o.Usage, u)
	}
	return nil
}

// record records e, or says that what was done is missing from the trail.
func record(ctx context.Context, sink certfleet.EventSink, e certfleet.Event, done string) error {
	if err := sink.RecordEvent(ctx, e); err != nil {
		return fmt.Errorf("%s, but it is missing from the audit trail: %w", done, err)
	}
	return nil
}

// CreateTenantToken makes a token as CreateToken does, bound to tenant
// ("" makes an operator's token): its names within the tenant's, and no
// admin permission.
func CreateTenantToken(ctx context.Context, ts TokenStore, tenant, description string, names []string, perms []certfleet.Permission, url bool) (certfleet.Token, string, error) {
	if tenant == "" {
		return CreateToken(ctx, ts, description, names, perms, url)
	}
	admin, ok := ts.(tenantAdmin)
	if !ok {
		return certfleet.Token{}, "", fmt.Errorf("the %T store keeps no tenants", ts)
	}
	tn, err := admin.Tenant(ctx, tenant)
	if err != nil {
		return certfleet.Token{}, "", err
	}
	return createToken(ctx, ts, certfleet.Token{Description: description, Names: names, Permissions: perms, URLCredential: url, Tenant: tenant},
		func(t certfleet.Token) error { return certfleet.CheckTenantToken(t, tn) })
}

// AccountCommand does what certfleet account declare or forget asks
// (AccountHelp) on st, with args the account's name and, to declare, its
// KEY=VALUE settings; the files they name are read here. It returns the
// account declared.
func AccountCommand(ctx context.Context, cfg *config.Config, st certfleet.Store, verb string, args []string) (certfleet.AccountSettings, error) {
	ts, err := asTenantAdmin(st)
	if err != nil || len(args) == 0 {
		return certfleet.AccountSettings{}, cmp(err, certfleet.Errorf(certfleet.EINVALID, "give the account's name (see certfleet account --help)"))
	}
	name := args[0]
	if verb == "forget" {
		if len(args) > 1 {
			return certfleet.AccountSettings{}, certfleet.Errorf(certfleet.EINVALID, "account forget takes the account's name only")
		}
		if err := ts.DeleteAccountSettings(ctx, name); err != nil {
			return certfleet.AccountSettings{}, err
		}
		e := OperatorEvent(certfleet.EventAccount, "declared account "+name+" deleted")
		e.Reason = "deleted"
		return certfleet.AccountSettings{Name: name}, record(ctx, ts, e, "account "+name+" forgotten")
	}
	if _, ok := cfg.Accounts[name]; ok || name == certfleet.DefaultAccount {
		return certfleet.AccountSettings{}, certfleet.Errorf(certfleet.ECONFLICT, "account %q is defined in %s, which always wins; declare another name", name, cfg.File)
	}
	kv, err := settings(args[1:], "directory", "email", "eab_key_id", "eab_hmac_key_file", "trusted_roots")
	if err != nil {
		return certfleet.AccountSettings{}, err
	}
	a := certfleet.AccountSettings{Name: name, Directory: kv["directory"], Email: kv["email"], EABKeyID: kv["eab_key_id"]}
	if f := kv["eab_hmac_key_file"]; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return a, certfleet.Errorf(certfleet.EINVALID, "eab_hmac_key_file: %v", err)
		}
		a.EABHMACKey = strings.TrimSpace(string(b))
	}
	if f := kv["trusted_roots"]; f != "" {
		if a.TrustedRootsPEM, err = os.ReadFile(f); err != nil {
			return a, certfleet.Errorf(certfleet.EINVALID, "trusted_roots: %v", err)
		}
		if _, err := certfleet.ParseChain(a.TrustedRootsPEM); err != nil {
			return a, certfleet.Errorf(certfleet.EINVALID, "trusted_roots %s: %v", f, err)
		}
	}
	if a, err = ts.PutAccountSettings(ctx, a); err != nil {
		return a, err
	}
	e := OperatorEvent(certfleet.EventAccount, "account "+name+" declared at "+a.Directory)
	e.Reason, e.At = "declared", time.Now()
	return a, record(ctx, ts, e, "account "+name+" declared")
}
