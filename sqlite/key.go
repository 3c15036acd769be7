package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet/seal"
)

// sealKey and openKey are the only way private keys (issuance keys, pending
// order keys, account keys) enter and leave the database. With a master key
// (Store.KEK) every key is sealed (AES-256-GCM under the store's data key,
// package seal), bound to its row by aad so that a value copied into another
// row fails to open. Without one, keys are stored as they are, which Open
// allows only while the store holds no data key.
//
// Neither function may put key material into an error message.

// sealKey returns the stored form of a PEM private key (see seal.Keyring).
func (s *Store) sealKey(pemKey, aad []byte) ([]byte, error) { return s.keys.Seal(pemKey, aad) }

// openKey reverses sealKey (see seal.Keyring).
func (s *Store) openKey(stored, aad []byte) ([]byte, error) { return s.keys.Open(stored, aad) }

func accountAAD(ca, name string) []byte { return seal.AccountKeyAAD(ca, name) }

func pendingAccountAAD(ca, name string) []byte { return seal.PendingAccountKeyAAD(ca, name) }

func pendingKeyAAD(spec, keyType, orderURL string) []byte {
	return seal.PendingKeyAAD(spec, keyType, orderURL)
}

func issuanceAAD(spec, keyType, fingerprint string) []byte {
	return seal.IssuanceKeyAAD(spec, keyType, fingerprint)
}

// openSealer makes the store's Sealer (creating the data key in an empty
// store) when a master key is set, and otherwise checks that the store holds
// no data key: a store that may hold sealed values is never used without
// its master key.
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
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, kek_id, wrapped, created_at FROM data_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load data keys: %w", translate(err))
	}
	defer rows.Close()
	var out []seal.WrappedDEK
	for rows.Next() {
		var (
			d       seal.WrappedDEK
			created int64
		)
		if err := rows.Scan(&d.ID, &d.KEKID, &d.Wrapped, &created); err != nil {
			return nil, fmt.Errorf("load data keys: %w", translate(err))
		}
		d.Created = fromTS(sql.NullInt64{Int64: created, Valid: true})
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load data keys: %w", translate(err))
	}
	return out, nil
}

// CreateDataKey implements seal.DEKStore: the check and the insert are one
// write transaction (BEGIN IMMEDIATE), so of two processes exactly one
// stores its data key.
func (s *Store) CreateDataKey(ctx context.Context, d seal.WrappedDEK) error {
	err := s.write(ctx, func(tx *txn) error {
		var n int
		if err := tx.queryRow(`SELECT count(*) FROM data_keys`).Scan(&n); err != nil {
			return translate(err)
		}
		if n > 0 {
			return seal.ErrDataKeyExists
		}
		_, err := tx.exec(`INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES (?, ?, ?, ?)`,
			d.ID, d.KEKID, d.Wrapped, tsReq(d.Created))
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("create data key %s: %w", d.ID, err)
	}
	return nil
}

// RewrapDataKey implements seal.DEKStore (compare-and-swap on kek_id).
func (s *Store) RewrapDataKey(ctx context.Context, oldKEKID string, d seal.WrappedDEK) (bool, error) {
	var swapped bool
	err := s.write(ctx, func(tx *txn) error {
		var cur string
		err := tx.queryRow(`SELECT kek_id FROM data_keys WHERE id = ?`, d.ID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return seal.ErrUnknownDataKey
		} else if err != nil {
			return translate(err)
		}
		if cur != oldKEKID {
			return nil
		}
		_, err = tx.exec(`UPDATE data_keys SET kek_id = ?, wrapped = ?, created_at = ? WHERE id = ? AND kek_id = ?`,
			d.KEKID, d.Wrapped, tsReq(d.Created), d.ID, oldKEKID)
		swapped = err == nil
		return translate(err)
	})
	if err != nil {
		return false, fmt.Errorf("rewrap data key %s: %w", d.ID, err)
	}
	return swapped, nil
}
