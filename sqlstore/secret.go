package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
)

var _ certfleet.SecretStore = (*Store)(nil)

var (
	qPutSecret = SQL(`INSERT INTO secrets (name, value, created_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`)
	qSecret       = SQL(`SELECT value FROM secrets WHERE name = $1`)
	qSecrets      = SQL(`SELECT name, created_at, updated_at FROM secrets ORDER BY name`)
	qDeleteSecret = SQL(`DELETE FROM secrets WHERE name = $1`)
)

// PutSecret implements certfleet.SecretStore: the value is always sealed,
// bound to its name; a store without a master key refuses it.
func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	if err := certfleet.CheckSecret(name, value); err != nil {
		return err
	}
	sealed, err := sealSecret(s.keys, name, value)
	if err != nil {
		return err
	}
	now := s.now()
	return s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qPutSecret, name, sealed, now); err != nil {
			return fmt.Errorf("store secret %q: %w", name, err)
		}
		return nil
	})
}

// Secret implements certfleet.SecretStore.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	if err := certfleet.ValidateSecretName(name); err != nil {
		return nil, err
	}
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	var stored []byte
	err = q.QueryRow(qSecret, name).Scan(&stored)
	if noRows(err) {
		return nil, certfleet.Errorf(certfleet.ENOTFOUND, "no secret %q in the store; add it with `certfleet secret set %s`", name, name)
	} else if err != nil {
		return nil, fmt.Errorf("read secret %q: %w", name, err)
	}
	return openSecret(s.keys, name, stored)
}

// Secrets implements certfleet.SecretStore.
func (s *Store) Secrets(ctx context.Context) ([]certfleet.SecretInfo, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qSecrets)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	var out []certfleet.SecretInfo
	for rows.Next() {
		var i certfleet.SecretInfo
		if err := rows.Scan(&i.Name, &i.CreatedAt, &i.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret implements certfleet.SecretStore.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(qDeleteSecret, name)
		if err != nil {
			return fmt.Errorf("delete secret %q: %w", name, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "no secret %q in the store", name)
		}
		return nil
	})
}

// sealSecret is how a store seals a stored secret (certfleet.SecretStore):
// always sealed, bound to its name; a store without a master key refuses
// it with an error saying what to set.
func sealSecret(k seal.Keyring, name string, value []byte) ([]byte, error) {
	b, err := k.SealSecret(name, value)
	if errors.Is(err, seal.ErrNoSealer) {
		return nil, certfleet.ErrSecretsNeedMasterKey(name)
	}
	return b, err
}

// openSecret reverses SealSecret. A value stored in the clear is refused,
// not trusted: nothing certfleet writes puts one there.
func openSecret(k seal.Keyring, name string, stored []byte) ([]byte, error) {
	b, err := k.OpenSecret(name, stored)
	if errors.Is(err, seal.ErrNotSealed) {
		return nil, certfleet.Errorf(certfleet.EINTERNAL, "secret %q is stored unsealed, which certfleet never does; set it again with `certfleet secret set %s`", name, name)
	}
	return b, err
}
