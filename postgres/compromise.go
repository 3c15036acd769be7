package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
	"github.com/jackc/pgx/v5"
)

var _ certfleet.KeyBlocklist = (*Store)(nil)

// BlockKey implements certfleet.KeyBlocklist.
func (s *Store) BlockKey(ctx context.Context, b certfleet.BlockedKey) error {
	b, err := storeutil.PrepareBlockedKey(b, s.now())
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO blocked_keys (key_id, reason, actor, blocked_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key_id) DO NOTHING`, b.KeyID, b.Reason, b.Actor, b.BlockedAt)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("block key %s: %w", b.KeyID, err)
	}
	return nil
}

// KeyBlocked implements certfleet.KeyBlocklist.
func (s *Store) KeyBlocked(ctx context.Context, keyID string) (bool, error) {
	if s.pool == nil {
		return false, errNotOpen
	}
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM blocked_keys WHERE key_id = $1`, keyID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("look up blocked key %s: %w", keyID, translate(err))
	}
	return true, nil
}

// BlockedKeys implements certfleet.KeyBlocklist.
func (s *Store) BlockedKeys(ctx context.Context) ([]certfleet.BlockedKey, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	rows, err := s.pool.Query(ctx, `SELECT key_id, reason, actor, blocked_at FROM blocked_keys ORDER BY blocked_at, key_id`)
	if err != nil {
		return nil, fmt.Errorf("list blocked keys: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.BlockedKey
	for rows.Next() {
		var (
			b  certfleet.BlockedKey
			at time.Time
		)
		if err := rows.Scan(&b.KeyID, &b.Reason, &b.Actor, &at); err != nil {
			return nil, fmt.Errorf("list blocked keys: %w", translate(err))
		}
		b.BlockedAt = at.UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list blocked keys: %w", translate(err))
	}
	return out, nil
}
