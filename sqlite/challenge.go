package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/certfleet/certfleet"
)

const (
	qDeleteExpiredChallenges = `DELETE FROM challenges WHERE expires IS NOT NULL AND expires <= ?`
	qPutChallenge            = `INSERT INTO challenges (type, key, key_authorization, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (type, key) DO UPDATE SET key_authorization = excluded.key_authorization, expires = excluded.expires`
	qDeleteChallenge = `DELETE FROM challenges WHERE type = ? AND key = ?`
	qChallenge       = `SELECT key_authorization, expires FROM challenges
		WHERE type = ? AND key = ? AND (expires IS NULL OR expires > ?)`
)

// PutChallenge implements certfleet.ChallengeStore. A zero Expires never
// expires. Expired tokens are deleted in the same transaction, so the table
// stays small without a sweeper.
func (s *Store) PutChallenge(ctx context.Context, t certfleet.ChallengeToken) error {
	if t.Type == "" || t.Key == "" {
		return certfleet.Errorf(certfleet.EINVALID, "put challenge: type and key required")
	}
	now := tsReq(s.now())
	err := s.write(ctx, func(tx *txn) error {
		if _, err := tx.exec(qDeleteExpiredChallenges, now); err != nil {
			return translate(err)
		}
		_, err := tx.exec(qPutChallenge,
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
	err := s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(qDeleteChallenge, string(typ), key)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("delete %s challenge %q: %w", typ, key, err)
	}
	return nil
}

// Challenge implements certfleet.ChallengeStore: one primary-key lookup on
// the read pool, never waiting for writers.
func (s *Store) Challenge(ctx context.Context, typ certfleet.ChallengeType, key string) (certfleet.ChallengeToken, error) {
	_, err := s.reader()
	if err != nil {
		return certfleet.ChallengeToken{}, err
	}
	t := certfleet.ChallengeToken{Type: typ, Key: key}
	var expires sql.NullInt64
	err = s.rstmt(qChallenge).QueryRowContext(ctx,
		string(typ), key, tsReq(s.now())).Scan(&t.KeyAuthorization, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return certfleet.ChallengeToken{}, certfleet.Errorf(certfleet.ENOTFOUND, "%s challenge %q not found", typ, key)
	} else if err != nil {
		return certfleet.ChallengeToken{}, fmt.Errorf("load %s challenge %q: %w", typ, key, translate(err))
	}
	t.Expires = fromTS(expires)
	return t, nil
}
