package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.KeyBlocklist = (*Store)(nil)

// BlockKey implements certfleet.KeyBlocklist.
func (s *Store) BlockKey(ctx context.Context, b certfleet.BlockedKey) error {
	b, err := storeutil.PrepareBlockedKey(b, s.now())
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(`INSERT INTO blocked_keys (key_id, reason, actor, blocked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (key_id) DO NOTHING`, b.KeyID, b.Reason, b.Actor, tsReq(b.BlockedAt))
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("block key %s: %w", b.KeyID, err)
	}
	return nil
}

// KeyBlocked implements certfleet.KeyBlocklist.
func (s *Store) KeyBlocked(ctx context.Context, keyID string) (bool, error) {
	db, err := s.reader()
	if err != nil {
		return false, err
	}
	var one int
	err = db.QueryRowContext(ctx, `SELECT 1 FROM blocked_keys WHERE key_id = ?`, keyID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("look up blocked key %s: %w", keyID, translate(err))
	}
	return true, nil
}

// BlockedKeys implements certfleet.KeyBlocklist.
func (s *Store) BlockedKeys(ctx context.Context) ([]certfleet.BlockedKey, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT key_id, reason, actor, blocked_at FROM blocked_keys ORDER BY blocked_at, key_id`)
	if err != nil {
		return nil, fmt.Errorf("list blocked keys: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.BlockedKey
	for rows.Next() {
		var (
			b  certfleet.BlockedKey
			at int64
		)
		if err := rows.Scan(&b.KeyID, &b.Reason, &b.Actor, &at); err != nil {
			return nil, fmt.Errorf("list blocked keys: %w", translate(err))
		}
		b.BlockedAt = fromTS(sql.NullInt64{Int64: at, Valid: true})
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list blocked keys: %w", translate(err))
	}
	return out, nil
}
