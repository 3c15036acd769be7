package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// PutChallenge implements certfleet.ChallengeStore. A zero Expires never
// expires. Expired tokens are deleted in the same transaction, so the table
// stays small without a sweeper.
func (s *Store) PutChallenge(ctx context.Context, t certfleet.ChallengeToken) error {
	if t.Type == "" || t.Key == "" {
		return certfleet.Errorf(certfleet.EINVALID, "put challenge: type and key required")
	}
	now := s.now()
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM challenges WHERE expires IS NOT NULL AND expires <= $1`, now); err != nil {
			return translate(err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO challenges (type, key, key_authorization, expires) VALUES ($1, $2, $3, $4)
			ON CONFLICT (type, key) DO UPDATE SET key_authorization = excluded.key_authorization, expires = excluded.expires`,
			string(t.Type), t.Key, t.KeyAuthorization, ts(t.Expires))
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("put %s challenge %q: %w", t.Type, t.Key, err)
	}
	return nil
}

// DeleteChallenge implements certfleet.ChallengeStore.
func (s *Store) DeleteChallenge(ctx context.Context, typ certfleet.ChallengeType, key string) error {
	if s.pool == nil {
		return errNotOpen
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM challenges WHERE type = $1 AND key = $2`, string(typ), key); err != nil {
		return fmt.Errorf("delete %s challenge %q: %w", typ, key, translate(err))
	}
	return nil
}

// Challenge implements certfleet.ChallengeStore: one primary-key lookup.
func (s *Store) Challenge(ctx context.Context, typ certfleet.ChallengeType, key string) (certfleet.ChallengeToken, error) {
	if s.pool == nil {
		return certfleet.ChallengeToken{}, errNotOpen
	}
	t := certfleet.ChallengeToken{Type: typ, Key: key}
	var expires pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `SELECT key_authorization, expires FROM challenges
		WHERE type = $1 AND key = $2 AND (expires IS NULL OR expires > $3)`,
		string(typ), key, s.now()).Scan(&t.KeyAuthorization, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return certfleet.ChallengeToken{}, certfleet.Errorf(certfleet.ENOTFOUND, "%s challenge %q not found", typ, key)
	} else if err != nil {
		return certfleet.ChallengeToken{}, fmt.Errorf("load %s challenge %q: %w", typ, key, translate(err))
	}
	t.Expires = fromTS(expires)
	return t, nil
}
