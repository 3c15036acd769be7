package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/jackc/pgx/v5"
)

var _ certfleet.SpecWriter = (*Store)(nil)

// lockSpecs serialises every write of specs (SyncSpecs, PutSpec,
// WithdrawSpec) within one schema: two instances putting the same new name
// at once would otherwise both find it absent, and the second insert would
// fail with a unique violation instead of finding the spec unchanged.
func lockSpecs(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, lockSync); err != nil {
		return fmt.Errorf("take spec lock: %w", translate(err))
	}
	return nil
}

// PutSpec implements certfleet.SpecWriter with the SQLite store's
// semantics. A change sends a NOTIFY in the same transaction, so every
// instance's scheduler and long-polls hear of it.
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
	err = s.write(ctx, func(tx pgx.Tx) error {
		changed = false
		if err := lockSpecs(ctx, tx); err != nil {
			return err
		}
		var (
			source, old string
			disabled    bool
		)
		err := tx.QueryRow(ctx, `SELECT source, disabled, spec FROM specs WHERE name = $1`, sp.Name).Scan(&source, &disabled, &old)
		b := &pgx.Batch{}
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			b.Queue(qInsertSpec, sp.Name, sp.Source, false, js, now)
			for _, kt := range sp.KeyTypes {
				b.Queue(qInsertJob, sp.Name, string(kt), sp.Revision(kt), now, false)
			}
		case err != nil:
			return fmt.Errorf("load spec: %w", translate(err))
		case source != sp.Source && !disabled:
			return certfleet.Errorf(certfleet.ECONFLICT, "certificate %q is already declared by source %q", sp.Name, source)
		case source == sp.Source && !disabled && old == js:
			return nil
		default:
			b.Queue(`UPDATE specs SET source = $1, disabled = false, spec = $2, updated_at = $3 WHERE name = $4`,
				sp.Source, js, now, sp.Name)
			if err := syncJobs(ctx, tx, b, sp, now); err != nil {
				return err
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write spec: %w", translate(err))
		}
		changed = true
		return s.notify(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("put spec %q: %w", sp.Name, err)
	}
	return changed, nil
}

// WithdrawSpec implements certfleet.SpecWriter with the SQLite store's
// semantics. With destroyKeys the private keys of the spec's archive and
// of its pending orders are erased (erasedKey) in the same transaction, and
// the jobs forget their current certificates. It sends a NOTIFY.
func (s *Store) WithdrawSpec(ctx context.Context, name string, destroyKeys bool) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := lockSpecs(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE specs SET disabled = true, updated_at = $1 WHERE name = $2`, s.now(), name)
		if err != nil {
			return fmt.Errorf("disable spec: %w", translate(err))
		}
		if tag.RowsAffected() == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "certificate %q not found", name)
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE jobs SET disabled = true WHERE spec = $1`, name)
		if destroyKeys {
			b.Queue(`UPDATE issuances SET key_pem = $1 WHERE spec = $2`, erasedKey(), name)
			b.Queue(`UPDATE jobs SET current_id = NULL, current_revision = '', pending_order_url = '', pending_key = $1
				WHERE spec = $2`, erasedKey(), name)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("disable jobs: %w", translate(err))
		}
		return s.notify(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("withdraw spec %q: %w", name, err)
	}
	return nil
}
