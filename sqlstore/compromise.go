package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.KeyBlocklist = (*Store)(nil)

var (
	qBlockKey = SQL(`INSERT INTO blocked_keys (key_id, reason, actor, blocked_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key_id) DO NOTHING`)
	qKeyBlocked  = SQL(`SELECT 1 FROM blocked_keys WHERE key_id = $1`)
	qBlockedKeys = SQL(`SELECT key_id, reason, actor, blocked_at FROM blocked_keys ORDER BY blocked_at, key_id`)
)

// BlockKey implements certfleet.KeyBlocklist.
func (s *Store) BlockKey(ctx context.Context, b certfleet.BlockedKey) error {
	b, err := prepareBlockedKey(b, s.now())
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qBlockKey, b.KeyID, b.Reason, b.Actor, b.BlockedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("block key %s: %w", b.KeyID, err)
	}
	return nil
}

// KeyBlocked implements certfleet.KeyBlocklist: one primary-key lookup.
func (s *Store) KeyBlocked(ctx context.Context, keyID string) (bool, error) {
	q, err := s.read(ctx)
	if err != nil {
		return false, err
	}
	var one int
	err = q.QueryRow(qKeyBlocked, keyID).Scan(&one)
	if noRows(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("look up blocked key %s: %w", keyID, err)
	}
	return true, nil
}

// BlockedKeys implements certfleet.KeyBlocklist.
func (s *Store) BlockedKeys(ctx context.Context) ([]certfleet.BlockedKey, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qBlockedKeys)
	if err != nil {
		return nil, fmt.Errorf("list blocked keys: %w", err)
	}
	defer rows.Close()
	var out []certfleet.BlockedKey
	for rows.Next() {
		var b certfleet.BlockedKey
		if err := rows.Scan(&b.KeyID, &b.Reason, &b.Actor, &b.BlockedAt); err != nil {
			return nil, fmt.Errorf("list blocked keys: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list blocked keys: %w", err)
	}
	return out, nil
}

// prepareBlockedKey validates b for certfleet.KeyBlocklist.BlockKey and
// stamps a missing BlockedAt with now. It insists on a full key ID: a
// prefix in the blocklist would block nothing (lookups use full IDs).
func prepareBlockedKey(b certfleet.BlockedKey, now time.Time) (certfleet.BlockedKey, error) {
	if err := certfleet.ValidKeyIDPrefix(b.KeyID); err != nil || len(b.KeyID) != 64 {
		return b, certfleet.Errorf(certfleet.EINVALID, "block key %q: a full key ID (64 hex digits) is required", b.KeyID)
	}
	if b.BlockedAt.IsZero() {
		b.BlockedAt = now
	}
	return b, nil
}
