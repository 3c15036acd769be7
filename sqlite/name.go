package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
)

var _ certfleet.SpecWriter = (*Store)(nil)

// PutSpec implements certfleet.SpecWriter.
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
	now := tsReq(s.now())
	changed := false
	err = s.write(ctx, func(tx *txn) error {
		changed = false
		var (
			source, old string
			disabled    bool
		)
		err := tx.queryRow(`SELECT source, disabled, spec FROM specs WHERE name = ?`, sp.Name).Scan(&source, &disabled, &old)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.exec(qInsertSpec, sp.Name, sp.Source, 0, js, now, now); err != nil {
				return fmt.Errorf("add spec %q: %w", sp.Name, translate(err))
			}
			for _, kt := range sp.KeyTypes {
				if _, err := tx.exec(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, 0); err != nil {
					return fmt.Errorf("add job %s/%s: %w", sp.Name, kt, translate(err))
				}
			}
			changed = true
			return nil
		case err != nil:
			return fmt.Errorf("load spec %q: %w", sp.Name, translate(err))
		case source != sp.Source && !disabled:
			return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, source)
		case source == sp.Source && !disabled && old == js:
			return nil
		}
		if _, err := tx.exec(`UPDATE specs SET source = ?, disabled = 0, spec = ?, updated_at = ? WHERE name = ?`,
			sp.Source, js, now, sp.Name); err != nil {
			return fmt.Errorf("update spec %q: %w", sp.Name, translate(err))
		}
		changed = true
		return syncJobs(ctx, tx, sp, now)
	})
	if err != nil {
		return false, fmt.Errorf("put spec %q: %w", sp.Name, err)
	}
	return changed, nil
}

// WithdrawSpec implements certfleet.SpecWriter.
func (s *Store) WithdrawSpec(ctx context.Context, name string, destroyKeys bool) error {
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`UPDATE specs SET disabled = 1, updated_at = ? WHERE name = ?`, tsReq(s.now()), name)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", name)
		}
		if _, err := tx.exec(`UPDATE jobs SET disabled = 1 WHERE spec = ?`, name); err != nil {
			return translate(err)
		}
		if !destroyKeys {
			return nil
		}
		if _, err := tx.exec(`UPDATE issuances SET key_pem = NULL WHERE spec = ?`, name); err != nil {
			return translate(err)
		}
		_, err = tx.exec(`UPDATE jobs SET current_id = NULL, current_revision = '', pending_order_url = '', pending_key = NULL WHERE spec = ?`, name)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("withdraw spec %q: %w", name, err)
	}
	return nil
}
