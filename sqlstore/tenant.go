package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/certfleet/certfleet"
)

var _ certfleet.TenantStore = (*Store)(nil)

const tenantColumns = `name, description, names, account, max_names, orders_per_week, created_at, updated_at`

var (
	qInsertTenant = SQL(`INSERT INTO tenants (` + tenantColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`)
	qUpdateTenant = SQL(`UPDATE tenants SET description = $2, names = $3, account = $4, max_names = $5, orders_per_week = $6, updated_at = $7
		WHERE name = $1`)
	qTenant        = SQL(`SELECT ` + tenantColumns + ` FROM tenants WHERE name = $1`)
	qTenants       = SQL(`SELECT ` + tenantColumns + ` FROM tenants ORDER BY name`)
	qDeleteTenant  = SQL(`DELETE FROM tenants WHERE name = $1`)
	qTenantsOfAcct = SQL(`SELECT name FROM tenants WHERE account = $1 ORDER BY name LIMIT 10`)
	// qTenantSpecsInUse lists the specs of a tenant that are not
	// withdrawn, through specs_tenant.
	qTenantSpecsInUse  = SQL(`SELECT name, spec FROM specs WHERE tenant = $1 AND NOT disabled ORDER BY tenant, name`)
	qRevokeTenantToken = SQL(`UPDATE api_tokens SET revoked_at = $1 WHERE tenant = $2 AND revoked_at IS NULL RETURNING id`)
	qEnabledSpecs      = SQL(`SELECT name, spec FROM specs WHERE NOT disabled ORDER BY name`)

	qPutAccountSettings = SQL(`INSERT INTO account_settings (name, directory, email, eab_key_id, eab_hmac_key, trusted_roots, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
		ON CONFLICT (name) DO UPDATE SET directory = excluded.directory, email = excluded.email, eab_key_id = excluded.eab_key_id,
			eab_hmac_key = excluded.eab_hmac_key, trusted_roots = excluded.trusted_roots, updated_at = excluded.updated_at
		RETURNING created_at`)
	qAccountSettings     = SQL(`SELECT name, directory, email, eab_key_id, eab_hmac_key, trusted_roots, created_at, updated_at FROM account_settings WHERE name = $1`)
	qAccountSettingsList = SQL(`SELECT name, directory, email, eab_key_id, trusted_roots, created_at, updated_at FROM account_settings ORDER BY name`)
	qDeleteAccountSet    = SQL(`DELETE FROM account_settings WHERE name = $1`)
)

// tenantWord names a tenant in an error: "tenant "acme"", or "the
// operator" for "".
func tenantWord(tenant string) string {
	if tenant == "" {
		return "the operator"
	}
	return fmt.Sprintf("tenant %q", tenant)
}

func scanTenant(r Row) (certfleet.Tenant, error) {
	var (
		t     certfleet.Tenant
		names string
	)
	if err := r.Scan(&t.Name, &t.Description, &names, &t.Account, &t.MaxNames, &t.OrdersPerWeek, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(names), &t.Names); err != nil {
		return t, fmt.Errorf("decode names of tenant %s: %w", t.Name, err)
	}
	return t, nil
}

func loadTenants(q Querier) ([]certfleet.Tenant, error) {
	rows, err := q.Query(qTenants)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// CreateTenant implements certfleet.TenantStore. It holds the spec lock, so
// that two instances creating overlapping tenants at once cannot both
// succeed.
func (s *Store) CreateTenant(ctx context.Context, t certfleet.Tenant) (certfleet.Tenant, error) {
	return s.writeTenant(ctx, t, true)
}

// UpdateTenant implements certfleet.TenantStore.
func (s *Store) UpdateTenant(ctx context.Context, t certfleet.Tenant) (certfleet.Tenant, error) {
	return s.writeTenant(ctx, t, false)
}

func (s *Store) writeTenant(ctx context.Context, t certfleet.Tenant, create bool) (certfleet.Tenant, error) {
	if err := t.Validate(); err != nil {
		return t, err
	}
	names, err := json.Marshal(t.Names)
	if err != nil {
		return t, fmt.Errorf("encode tenant names: %w", err)
	}
	now := s.now()
	err = s.write(ctx, func(tx Tx) error {
		if err := lockSpecs(tx); err != nil {
			return err
		}
		all, err := loadTenants(tx)
		if err != nil {
			return err
		}
		var old *certfleet.Tenant
		for i := range all {
			if all[i].Name == t.Name {
				old = &all[i]
			}
		}
		switch {
		case create && old != nil:
			return certfleet.Errorf(certfleet.ECONFLICT, "tenant %q exists already; change it instead", t.Name)
		case !create && old == nil:
			return certfleet.Errorf(certfleet.ENOTFOUND, "tenant %q not found", t.Name)
		}
		if err := certfleet.CheckTenantPatterns(t, all); err != nil {
			return err
		}
		if create {
			t.CreatedAt = now
			_, err = tx.Exec(qInsertTenant, t.Name, t.Description, string(names), t.Account, t.MaxNames, t.OrdersPerWeek, now)
		} else {
			t.CreatedAt = old.CreatedAt
			_, err = tx.Exec(qUpdateTenant, t.Name, t.Description, string(names), t.Account, t.MaxNames, t.OrdersPerWeek, now)
		}
		if err != nil {
			return fmt.Errorf("store tenant %s: %w", t.Name, err)
		}
		t.UpdatedAt = now
		return nil
	})
	return t, err
}

// Tenant implements certfleet.TenantStore: one primary-key lookup.
func (s *Store) Tenant(ctx context.Context, name string) (certfleet.Tenant, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Tenant{}, err
	}
	t, err := scanTenant(q.QueryRow(qTenant, name))
	if noRows(err) {
		return t, certfleet.Errorf(certfleet.ENOTFOUND, "tenant %q not found", name)
	} else if err != nil {
		return t, fmt.Errorf("load tenant %s: %w", name, err)
	}
	return t, nil
}

// Tenants implements certfleet.TenantStore.
func (s *Store) Tenants(ctx context.Context) ([]certfleet.Tenant, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	return loadTenants(q)
}

// specsInUse returns the names and identifier counts of the tenant's specs
// that are not withdrawn.
func specsInUse(q Querier, tenant string) (names []string, ids int, err error) {
	rows, err := q.Query(qTenantSpecsInUse, tenant)
	if err != nil {
		return nil, 0, fmt.Errorf("list the certificates of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, js string
		if err := rows.Scan(&name, &js); err != nil {
			return nil, 0, fmt.Errorf("list the certificates of tenant %s: %w", tenant, err)
		}
		names = append(names, name)
		ids += len(decodedIdentifiers(js))
	}
	return names, ids, rows.Err()
}

// decodedIdentifiers returns the identifiers of a stored spec (none if it
// cannot be decoded, which SyncSpecs and PutSpec never store).
func decodedIdentifiers(js string) []certfleet.Identifier {
	var sp struct {
		Identifiers []certfleet.Identifier `json:"identifiers"`
	}
	_ = json.Unmarshal([]byte(js), &sp)
	return sp.Identifiers
}

// TenantUsage implements certfleet.TenantStore.
func (s *Store) TenantUsage(ctx context.Context, name string) (certfleet.TenantUsage, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.TenantUsage{}, err
	}
	specs, ids, err := specsInUse(q, name)
	return certfleet.TenantUsage{Names: ids, Certificates: len(specs)}, err
}

// checkTenantQuota checks, in PutSpec's transaction under the spec lock,
// that sp's tenant exists and that putting sp, whose stored version holds
// held identifiers (0 when new or withdrawn), keeps the tenant within its
// MaxNames, unless it adds none.
func checkTenantQuota(tx Tx, sp certfleet.CertificateSpec, held int) error {
	t, err := scanTenant(tx.QueryRow(qTenant, sp.Tenant))
	if noRows(err) {
		return certfleet.Errorf(certfleet.EINVALID, "certificate %q: tenant %q does not exist (deleted?)", sp.Name, sp.Tenant)
	} else if err != nil {
		return fmt.Errorf("load tenant %s: %w", sp.Tenant, err)
	}
	adding := len(sp.Identifiers) - held
	if t.MaxNames == 0 || adding <= 0 {
		return nil
	}
	_, inUse, err := specsInUse(tx, sp.Tenant)
	if err != nil {
		return err
	}
	if inUse+adding > t.MaxNames {
		return certfleet.ErrOverQuota(t, inUse, adding)
	}
	return nil
}

// DeleteTenant implements certfleet.TenantStore, in one transaction under
// the spec lock: a PutSpec for the tenant on another instance either comes
// first (and is withdrawn or refused here) or finds no tenant.
func (s *Store) DeleteTenant(ctx context.Context, name string, withdraw bool) (certfleet.TenantDeletion, error) {
	var res certfleet.TenantDeletion
	now := s.now()
	err := s.write(ctx, func(tx Tx) error {
		res = certfleet.TenantDeletion{}
		if err := lockSpecs(tx); err != nil {
			return err
		}
		if _, err := scanTenant(tx.QueryRow(qTenant, name)); noRows(err) {
			return certfleet.Errorf(certfleet.ENOTFOUND, "tenant %q not found", name)
		} else if err != nil {
			return fmt.Errorf("load tenant %s: %w", name, err)
		}
		specs, _, err := specsInUse(tx, name)
		if err != nil {
			return err
		}
		if len(specs) > 0 && !withdraw {
			shown := specs
			if len(shown) > 10 {
				shown = shown[:10]
			}
			return certfleet.Errorf(certfleet.ECONFLICT,
				"tenant %q still has %d certificate(s) (%s%s): withdraw them first (DELETE /v1/names/NAME), or delete the tenant with withdraw (?withdraw=true, certfleet tenant delete -withdraw), which withdraws them too: their archive stays and nothing is revoked",
				name, len(specs), strings.Join(shown, ", "), map[bool]string{true: ", …"}[len(specs) > len(shown)])
		}
		var names []string
		for _, sp := range specs {
			tx.Queue(qDisableSpec, now, sp)
			tx.Queue(qDisableJobsOfSpec, sp)
			held, err := unindexSpec(tx, sp)
			if err != nil {
				return err
			}
			names = append(names, held...)
		}
		if err := notifyNames(tx, names); err != nil {
			return err
		}
		res.Withdrawn = specs
		rows, err := tx.Query(qRevokeTenantToken, now, name)
		if err != nil {
			return fmt.Errorf("revoke the tokens of tenant %s: %w", name, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("revoke the tokens of tenant %s: %w", name, err)
			}
			res.TokensRevoked = append(res.TokensRevoked, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("revoke the tokens of tenant %s: %w", name, err)
		}
		if _, err := tx.Exec(qDeleteTenant, name); err != nil {
			return fmt.Errorf("delete tenant %s: %w", name, err)
		}
		if len(specs) > 0 {
			return tx.Notify()
		}
		return nil
	})
	if err != nil {
		return certfleet.TenantDeletion{}, err
	}
	return res, nil
}

// eabName binds a sealed EAB MAC key to its account (package seal's AAD);
// the ':' keeps it apart from every stored secret's name.
func eabName(account string) string { return "account-eab:" + account }

// PutAccountSettings implements certfleet.TenantStore.
func (s *Store) PutAccountSettings(ctx context.Context, a certfleet.AccountSettings) (certfleet.AccountSettings, error) {
	if err := a.Validate(); err != nil {
		return a, err
	}
	var sealed []byte
	if a.EABHMACKey != "" {
		var err error
		if sealed, err = sealSecret(s.keys, eabName(a.Name), []byte(a.EABHMACKey)); err != nil {
			if certfleet.ErrorCode(err) == certfleet.EINVALID {
				return a, certfleet.Errorf(certfleet.EINVALID, "account %q: the store has no master key, so it cannot keep the EAB MAC key sealed; "+
					"set master_key_file (or CERTFLEET_MASTER_KEY), or declare the account in the config file", a.Name)
			}
			return a, err
		}
	}
	now := s.now()
	err := s.write(ctx, func(tx Tx) error {
		err := tx.QueryRow(qPutAccountSettings, a.Name, a.Directory, a.Email, a.EABKeyID, sealed, a.TrustedRootsPEM, now).Scan(&a.CreatedAt)
		if err != nil {
			return fmt.Errorf("store account %s: %w", a.Name, err)
		}
		return nil
	})
	a.UpdatedAt = now
	return a, err
}

// AccountSettings implements certfleet.TenantStore.
func (s *Store) AccountSettings(ctx context.Context, name string) (certfleet.AccountSettings, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.AccountSettings{}, err
	}
	var (
		a      certfleet.AccountSettings
		sealed []byte
	)
	err = q.QueryRow(qAccountSettings, name).Scan(&a.Name, &a.Directory, &a.Email, &a.EABKeyID, &sealed, &a.TrustedRootsPEM, &a.CreatedAt, &a.UpdatedAt)
	if noRows(err) {
		return a, certfleet.Errorf(certfleet.ENOTFOUND, "account %q is not declared (neither in the config nor at runtime)", name)
	} else if err != nil {
		return a, fmt.Errorf("load account %s: %w", name, err)
	}
	if len(sealed) > 0 {
		key, err := openSecret(s.keys, eabName(name), sealed)
		if err != nil {
			return a, fmt.Errorf("account %s: EAB MAC key: %w", name, err)
		}
		a.EABHMACKey = string(key)
	}
	return a, nil
}

// AccountSettingsList implements certfleet.TenantStore.
func (s *Store) AccountSettingsList(ctx context.Context) ([]certfleet.AccountSettings, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qAccountSettingsList)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []certfleet.AccountSettings
	for rows.Next() {
		var a certfleet.AccountSettings
		if err := rows.Scan(&a.Name, &a.Directory, &a.Email, &a.EABKeyID, &a.TrustedRootsPEM, &a.CreatedAt, &a.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// DeleteAccountSettings implements certfleet.TenantStore. Under the spec
// lock it finds the tenants that order with the account (an index) and
// the certificates that name it (a scan of the enabled specs: deleting an
// account is rare).
func (s *Store) DeleteAccountSettings(ctx context.Context, name string) error {
	return s.write(ctx, func(tx Tx) error {
		if err := lockSpecs(tx); err != nil {
			return err
		}
		var users []string
		rows, err := tx.Query(qTenantsOfAcct, name)
		if err != nil {
			return fmt.Errorf("find the tenants of account %s: %w", name, err)
		}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return err
			}
			users = append(users, "tenant "+t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(qEnabledSpecs)
		if err != nil {
			return fmt.Errorf("find the certificates of account %s: %w", name, err)
		}
		for rows.Next() && len(users) < 10 {
			var n, js string
			if err := rows.Scan(&n, &js); err != nil {
				rows.Close()
				return err
			}
			var sp struct {
				Account string `json:"account"`
			}
			if json.Unmarshal([]byte(js), &sp) == nil && sp.Account == name {
				users = append(users, "certificate "+n)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(users) > 0 {
			return certfleet.Errorf(certfleet.ECONFLICT, "account %q is in use (%s): point them at another account first", name, strings.Join(users, ", "))
		}
		n, err := tx.Exec(qDeleteAccountSet, name)
		if err != nil {
			return fmt.Errorf("delete account %s: %w", name, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "account %q is not declared at runtime", name)
		}
		return nil
	})
}
