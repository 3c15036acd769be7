package sqlstore

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/seal"
)

// sealKey, openKey and erasedKey are the only way private keys (issuance
// keys, pending order keys, account keys) enter, leave and are erased from
// the database. With a master key (Store.KEK) every key is sealed
// (AES-256-GCM under the store's data key, package seal), bound to its row
// by aad so that a value copied into another row fails to open. Without one,
// keys are stored as they are, which Attach allows only while the store
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

var _ seal.DEKStore = (*Store)(nil)

var (
	qDataKeys      = SQL(`SELECT id, kek_id, wrapped, created_at FROM data_keys ORDER BY id`)
	qCountDataKeys = SQL(`SELECT count(*) FROM data_keys`)
	// qCreateDataKey relies on the transaction for SQLite (a write
	// transaction excludes every other writer, and the count comes first)
	// and on the unique index data_keys_one for PostgreSQL, where
	// instances inserting at once each see no row: exactly one row wins.
	qCreateDataKey = SQL(`INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`)
	qRewrapDataKey = SQL(`UPDATE data_keys SET kek_id = $1, wrapped = $2, created_at = $3 WHERE id = $4 AND kek_id = $5`)
	qDataKeyExists = SQL(`SELECT 1 FROM data_keys WHERE id = $1`)
)

// DataKeys implements seal.DEKStore.
func (s *Store) DataKeys(ctx context.Context) ([]seal.WrappedDEK, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qDataKeys)
	if err != nil {
		return nil, fmt.Errorf("load data keys: %w", err)
	}
	defer rows.Close()
	var out []seal.WrappedDEK
	for rows.Next() {
		var d seal.WrappedDEK
		if err := rows.Scan(&d.ID, &d.KEKID, &d.Wrapped, &d.Created); err != nil {
			return nil, fmt.Errorf("load data keys: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load data keys: %w", err)
	}
	return out, nil
}

// CreateDataKey implements seal.DEKStore: of two processes or instances
// creating the first data key at once, exactly one stores its key.
func (s *Store) CreateDataKey(ctx context.Context, d seal.WrappedDEK) error {
	err := s.write(ctx, func(tx Tx) error {
		var n int
		if err := tx.QueryRow(qCountDataKeys).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return seal.ErrDataKeyExists
		}
		added, err := tx.Exec(qCreateDataKey, d.ID, d.KEKID, d.Wrapped, d.Created)
		if err != nil {
			return err
		}
		if added == 0 {
			return seal.ErrDataKeyExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create data key %s: %w", d.ID, err)
	}
	return nil
}

// RewrapDataKey implements seal.DEKStore (compare-and-swap on kek_id).
func (s *Store) RewrapDataKey(ctx context.Context, oldKEKID string, d seal.WrappedDEK) (bool, error) {
	var swapped bool
	err := s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(qRewrapDataKey, d.KEKID, d.Wrapped, d.Created, d.ID, oldKEKID)
		if err != nil {
			return err
		}
		if swapped = n == 1; swapped {
			return nil
		}
		var one int
		if err := tx.QueryRow(qDataKeyExists, d.ID).Scan(&one); noRows(err) {
			return seal.ErrUnknownDataKey
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("rewrap data key %s: %w", d.ID, err)
	}
	return swapped, nil
}
