package sqlstore

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet"
)

var (
	qDeleteExpiredChallenges = SQL(`DELETE FROM challenges WHERE expires IS NOT NULL AND expires <= $1`)
	qPutChallenge            = SQL(`INSERT INTO challenges (type, key, key_authorization, expires) VALUES ($1, $2, $3, $4)
		ON CONFLICT (type, key) DO UPDATE SET key_authorization = excluded.key_authorization, expires = excluded.expires`)
	qDeleteChallenge = SQL(`DELETE FROM challenges WHERE type = $1 AND key = $2`)
	qChallenge       = SQL(`SELECT key_authorization, expires FROM challenges
		WHERE type = $1 AND key = $2 AND (expires IS NULL OR expires > $3)`)
	qChallenges = SQL(`SELECT key, key_authorization, expires FROM challenges
		WHERE type = $1 AND (expires IS NULL OR expires > $2) ORDER BY key`)
)

var _ certfleet.ChallengeLister = (*Store)(nil)

// Challenges implements certfleet.ChallengeLister.
func (s *Store) Challenges(ctx context.Context, typ certfleet.ChallengeType) ([]certfleet.ChallengeToken, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qChallenges, string(typ), s.now())
	if err != nil {
		return nil, fmt.Errorf("list %s challenges: %w", typ, err)
	}
	defer rows.Close()
	var out []certfleet.ChallengeToken
	for rows.Next() {
		t := certfleet.ChallengeToken{Type: typ}
		if err := rows.Scan(&t.Key, &t.KeyAuthorization, &t.Expires); err != nil {
			return nil, fmt.Errorf("list %s challenges: %w", typ, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s challenges: %w", typ, err)
	}
	return out, nil
}

// PutChallenge implements certfleet.ChallengeStore. A zero Expires never
// expires. Expired tokens are deleted in the same transaction, so the table
// stays small without a sweeper.
func (s *Store) PutChallenge(ctx context.Context, t certfleet.ChallengeToken) error {
	if t.Type == "" || t.Key == "" {
		return certfleet.Errorf(certfleet.EINVALID, "put challenge: type and key required")
	}
	now := s.now()
	err := s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qDeleteExpiredChallenges, now); err != nil {
			return err
		}
		if _, err := tx.Exec(qPutChallenge, string(t.Type), t.Key, t.KeyAuthorization, NullTime(t.Expires)); err != nil {
			return err
		}
		// Other instances' responders copy the answer from the
		// notification itself, not by a read that a store outage right
		// after the commit could cut (issue 16).
		return tx.NotifyChallenge(t)
	})
	if err != nil {
		return fmt.Errorf("put %s challenge %q: %w", t.Type, t.Key, err)
	}
	return nil
}

// DeleteChallenge implements certfleet.ChallengeStore.
func (s *Store) DeleteChallenge(ctx context.Context, typ certfleet.ChallengeType, key string) error {
	err := s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qDeleteChallenge, string(typ), key); err != nil {
			return err
		}
		return tx.NotifyChallenge(certfleet.ChallengeToken{Type: typ, Key: key})
	})
	if err != nil {
		return fmt.Errorf("delete %s challenge %q: %w", typ, key, err)
	}
	return nil
}

// Challenge implements certfleet.ChallengeStore: one primary-key lookup
// (on SQLite's read pool, which never waits for writers).
func (s *Store) Challenge(ctx context.Context, typ certfleet.ChallengeType, key string) (certfleet.ChallengeToken, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.ChallengeToken{}, err
	}
	t := certfleet.ChallengeToken{Type: typ, Key: key}
	err = q.QueryRow(qChallenge, string(typ), key, s.now()).Scan(&t.KeyAuthorization, &t.Expires)
	if noRows(err) {
		return certfleet.ChallengeToken{}, certfleet.Errorf(certfleet.ENOTFOUND, "%s challenge %q not found", typ, key)
	} else if err != nil {
		return certfleet.ChallengeToken{}, fmt.Errorf("load %s challenge %q: %w", typ, key, err)
	}
	return t, nil
}
