package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet/seal"
	"github.com/jackc/pgx/v5"
)

// sealKey, openKey and erasedKey are the only way private keys (issuance
// keys, pending order keys, account keys) enter, leave and are erased from
// the database. With a master key (Store.KEK) every key is sealed
// (AES-256-GCM under the store's data key, package seal), bound to its row
// by aad so that a value copied into another row fails to open. Without one,
// keys are stored as they are, which Open allows only while the database
// holds no data key.
//
// None of them may put key material into an error message.

// sealKey returns the stored form of a PEM private key (see seal.Keyring).
func (s *Store) sealKey(pemKey, aad []byte) ([]byte, error) { return s.keys.Seal(pemKey, aad) }

// openKey reverses sealKey (see seal.Keyring).
func (s *Store) openKey(stored, aad []byte) ([]byte, error) { return s.keys.Open(stored, aad) }

// erasedKey is what a destroyed private key is overwritten with
// (WithdrawSpec with destroyKeys): NULL, as for no key at all, so openKey
// gives nil and nothing of the key remains in the row. Erasing a key
// overwrites its sealed bytes rather than relying on a data key that other,
// live keys share.
func erasedKey() []byte { return nil }

func accountAAD(ca, name string) []byte { return seal.AccountKeyAAD(ca, name) }

func pendingAccountAAD(ca, name string) []byte { return seal.PendingAccountKeyAAD(ca, name) }

func pendingKeyAAD(spec, keyType, orderURL string) []byte {
	return seal.PendingKeyAAD(spec, keyType, orderURL)
}

func issuanceAAD(spec, keyType, fingerprint string) []byte {
	return seal.IssuanceKeyAAD(spec, keyType, fingerprint)
}

// openSealer makes the store's Sealer (creating the data key in an empty
// database; of instances starting at once, one creates it) when a master key
// is set, and otherwise checks that the database holds no data key: a
// database that may hold sealed values is never used without its master key.
func (s *Store) openSealer(ctx context.Context) error {
	keys, err := seal.OpenKeyring(ctx, s, s.KEK, s.PreviousKEKs, s.MasterKeyHint)
	if err != nil {
		return err
	}
	s.keys, s.sealer = keys, keys.Sealer
	return nil
}

// Sealer returns the store's Sealer (to rotate its master key), or nil when
// the store was opened without a master key.
func (s *Store) Sealer() *seal.Sealer { return s.sealer }

var _ seal.DEKStore = (*Store)(nil)

// DataKeys implements seal.DEKStore.
func (s *Store) DataKeys(ctx context.Context) ([]seal.WrappedDEK, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	rows, err := s.pool.Query(ctx, `SELECT id, kek_id, wrapped, created_at FROM data_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load data keys: %w", translate(err))
	}
	defer rows.Close()
	var out []seal.WrappedDEK
	for rows.Next() {
		var d seal.WrappedDEK
		if err := rows.Scan(&d.ID, &d.KEKID, &d.Wrapped, &d.Created); err != nil {
			return nil, fmt.Errorf("load data keys: %w", translate(err))
		}
		d.Created = d.Created.UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load data keys: %w", translate(err))
	}
	return out, nil
}

// CreateDataKey implements seal.DEKStore. The unique index data_keys_one
// admits a single row, so of instances inserting at once exactly one
// succeeds, whatever their transactions see.
func (s *Store) CreateDataKey(ctx context.Context, d seal.WrappedDEK) error {
	if s.pool == nil {
		return errNotOpen
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, d.ID, d.KEKID, d.Wrapped, d.Created)
	if err != nil {
		return fmt.Errorf("create data key %s: %w", d.ID, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create data key %s: %w", d.ID, seal.ErrDataKeyExists)
	}
	return nil
}

// RewrapDataKey implements seal.DEKStore (compare-and-swap on kek_id).
func (s *Store) RewrapDataKey(ctx context.Context, oldKEKID string, d seal.WrappedDEK) (bool, error) {
	if s.pool == nil {
		return false, errNotOpen
	}
	tag, err := s.pool.Exec(ctx, `UPDATE data_keys SET kek_id = $1, wrapped = $2, created_at = $3 WHERE id = $4 AND kek_id = $5`,
		d.KEKID, d.Wrapped, d.Created, d.ID, oldKEKID)
	if err != nil {
		return false, fmt.Errorf("rewrap data key %s: %w", d.ID, translate(err))
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var one int
	err = s.pool.QueryRow(ctx, `SELECT 1 FROM data_keys WHERE id = $1`, d.ID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("rewrap data key %s: %w", d.ID, seal.ErrUnknownDataKey)
	} else if err != nil {
		return false, fmt.Errorf("rewrap data key %s: %w", d.ID, translate(err))
	}
	return false, nil
}
