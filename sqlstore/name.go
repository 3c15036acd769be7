package sqlstore

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
)

var _ certfleet.SpecWriter = (*Store)(nil)

// lockSpecsKey is the first key of the PostgreSQL advisory lock that
// serialises the writes of specs (see lockSpecs); the second is the hash
// of the schema, so databases with one certfleet schema each do not wait
// for each other. Ours: "cf" in ASCII, then 2 (package postgres keeps 1
// for its migrations). It never changes: instances of different certfleet
// versions on one database must take the same lock.
const lockSpecsKey = 0x6366_0002

var (
	qLockSpecs = SQLEach("", `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`)

	qReenableSpec      = SQL(`UPDATE specs SET source = $1, disabled = false, spec = $2, updated_at = $3, tenant = $5 WHERE name = $4`)
	qEraseIssuanceKeys = SQL(`UPDATE issuances SET key_pem = $1 WHERE spec = $2`)
	qForgetCurrent     = SQL(`UPDATE jobs SET current_id = NULL, current_revision = '', pending_order_url = '', pending_key = $1
		WHERE spec = $2`)
)

// lockSpecs takes the lock that serialises every write of specs
// (SyncSpecs, PutSpec, WithdrawSpec) within one schema, held until tx
// ends: two PostgreSQL instances putting the same new name at once would
// otherwise both find it absent, and the second insert would fail with a
// unique violation instead of finding the spec unchanged. SQLite's write
// transactions already exclude each other: there it does nothing.
func lockSpecs(tx Tx) error {
	if _, err := tx.Exec(qLockSpecs, lockSpecsKey); err != nil {
		return fmt.Errorf("take spec lock: %w", err)
	}
	return nil
}

// PutSpec implements certfleet.SpecWriter. A change tells every instance
// (certfleet.Notifier) in the same transaction, so every scheduler and
// long-poll hears of it.
//
// A spec of a tenant is checked under the spec lock, so the checks hold
// across instances: the tenant must exist (EINVALID), a spec of another
// tenant that is not withdrawn is not taken over (ECONFLICT), and a change
// that adds names must keep the tenant within its MaxNames (EQUOTA; fewer
// names are always accepted).
func (s *Store) PutSpec(ctx context.Context, sp certfleet.CertificateSpec) (bool, error) {
	if err := sp.Validate(); err != nil {
		return false, certfleet.Errorf(certfleet.EINVALID, "%v", err)
	}
	if sp.Source == "" {
		return false, certfleet.Errorf(certfleet.EINVALID, "put spec %q: source required", sp.Name)
	}
	sp.Disabled = false
	js, err := specJSON(sp)
	if err != nil {
		return false, err
	}
	now := s.now()
	changed := false
	err = s.write(ctx, func(tx Tx) error {
		changed = false
		if err := lockSpecs(tx); err != nil {
			return err
		}
		var (
			source, old, tenant string
			disabled            bool
		)
		err := tx.QueryRow(qSpec, sp.Name).Scan(&source, &disabled, &old, &tenant)
		if err != nil && !noRows(err) {
			return fmt.Errorf("load spec: %w", err)
		}
		exists := err == nil
		switch {
		case exists && source == sp.Source && !disabled && old == js && tenant == sp.Tenant:
			return nil
		case exists && !disabled && tenant != sp.Tenant:
			return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q belongs to %s", sp.Name, tenantWord(tenant))
		}
		if sp.Tenant != "" {
			var held int
			if exists && !disabled {
				held = len(decodedIdentifiers(old))
			}
			if err := checkTenantQuota(tx, sp, held); err != nil {
				return err
			}
		}
		var held []certfleet.Identifier // the names it had, for the index
		switch {
		case !exists:
			tx.Queue(qInsertSpec, sp.Name, sp.Source, false, js, now, sp.Tenant)
			for _, kt := range sp.KeyTypes {
				tx.Queue(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, false)
			}
		case source != sp.Source && !disabled:
			return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, source)
		default:
			jobs, err := loadJobs(tx, sp.Name)
			if err != nil {
				return err
			}
			tx.Queue(qReenableSpec, sp.Source, js, now, sp.Name, sp.Tenant)
			syncJobs(tx, sp, jobs, now)
			if !disabled {
				held = decodedIdentifiers(old)
			}
		}
		changed = true
		if err := notifyNames(tx, indexSpec(tx, sp.Name, held, sp.Identifiers)); err != nil {
			return err
		}
		return tx.Notify()
	})
	if err != nil {
		return false, fmt.Errorf("put spec %q: %w", sp.Name, err)
	}
	return changed, nil
}

// WithdrawSpec implements certfleet.SpecWriter. With destroyKeys the
// private keys of the spec's archive and of its pending orders are erased
// (erasedKey) in the same transaction, and the jobs forget their current
// certificates. It tells every instance (certfleet.Notifier).
func (s *Store) WithdrawSpec(ctx context.Context, name string, destroyKeys bool) error {
	err := s.write(ctx, func(tx Tx) error {
		if err := lockSpecs(tx); err != nil {
			return err
		}
		n, err := tx.Exec(qDisableSpec, s.now(), name)
		if err != nil {
			return fmt.Errorf("disable spec: %w", err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", name)
		}
		tx.Queue(qDisableJobsOfSpec, name)
		names, err := unindexSpec(tx, name)
		if err != nil {
			return err
		}
		if err := notifyNames(tx, names); err != nil {
			return err
		}
		if destroyKeys {
			tx.Queue(qEraseIssuanceKeys, erasedKey(), name)
			tx.Queue(qForgetCurrent, erasedKey(), name)
		}
		return tx.Notify()
	})
	if err != nil {
		return fmt.Errorf("withdraw spec %q: %w", name, err)
	}
	return nil
}
