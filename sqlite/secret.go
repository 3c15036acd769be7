package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.SecretStore = (*Store)(nil)

// PutSecret implements certfleet.SecretStore.
func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	if err := certfleet.CheckSecret(name, value); err != nil {
		return err
	}
	sealed, err := storeutil.SealSecret(s.Keyring(), name, value)
	if err != nil {
		return err
	}
	now := tsReq(s.now())
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(`INSERT INTO secrets (name, value, created_at, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, sealed, now, now)
		if err != nil {
			return fmt.Errorf("store secret %q: %w", name, translate(err))
		}
		return nil
	})
}

// Secret implements certfleet.SecretStore.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	if err := certfleet.ValidateSecretName(name); err != nil {
		return nil, err
	}
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var stored []byte
	err = db.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, certfleet.Errorf(certfleet.ENOTFOUND, "no secret %q in the store; add it with `certfleet secret set %s`", name, name)
	} else if err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, translate(err))
	}
	return storeutil.OpenSecret(s.Keyring(), name, stored)
}

// Secrets implements certfleet.SecretStore.
func (s *Store) Secrets(ctx context.Context) ([]certfleet.SecretInfo, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT name, created_at, updated_at FROM secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.SecretInfo
	for rows.Next() {
		var (
			i                certfleet.SecretInfo
			created, updated sql.NullInt64
		)
		if err := rows.Scan(&i.Name, &created, &updated); err != nil {
			return nil, fmt.Errorf("list secrets: %w", translate(err))
		}
		i.CreatedAt, i.UpdatedAt = fromTS(created), fromTS(updated)
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", translate(err))
	}
	return out, nil
}

// DeleteSecret implements certfleet.SecretStore.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`DELETE FROM secrets WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete secret %q: %w", name, translate(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "no secret %q in the store", name)
		}
		return nil
	})
}
