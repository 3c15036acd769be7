package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

var _ certfleet.TokenStore = (*Store)(nil)

const tokenColumns = `id, description, names, permissions, url_credential, hash, created_at, revoked_at`

// CreateToken implements certfleet.TokenStore. Only the token's hash is
// stored; a duplicate ID or hash is ECONFLICT.
func (s *Store) CreateToken(ctx context.Context, t certfleet.Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return certfleet.Errorf(certfleet.EINVALID, "create token: ID and hash required")
	}
	names, err := json.Marshal(t.Names)
	if err != nil {
		return fmt.Errorf("encode token names: %w", err)
	}
	perms, err := json.Marshal(t.Permissions)
	if err != nil {
		return fmt.Errorf("encode token permissions: %w", err)
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO api_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			t.ID, t.Description, string(names), string(perms), t.URLCredential, t.Hash, created, ts(t.RevokedAt))
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.ID, translate(err))
		}
		return nil
	})
}

func scanToken(sc scanner) (certfleet.Token, error) {
	var (
		t               certfleet.Token
		names, perms    string
		created, revokd pgtype.Timestamptz
	)
	if err := sc.Scan(&t.ID, &t.Description, &names, &perms, &t.URLCredential, &t.Hash, &created, &revokd); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(names), &t.Names); err != nil {
		return t, fmt.Errorf("decode names of token %s: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(perms), &t.Permissions); err != nil {
		return t, fmt.Errorf("decode permissions of token %s: %w", t.ID, err)
	}
	t.CreatedAt, t.RevokedAt = fromTS(created), fromTS(revokd)
	return t, nil
}

// TokenByHash implements certfleet.TokenStore: one indexed lookup (hash is
// UNIQUE), on the pool without a transaction.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (certfleet.Token, error) {
	if s.pool == nil {
		return certfleet.Token{}, errNotOpen
	}
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return certfleet.Token{}, certfleet.Errorf(certfleet.ENOTFOUND, "no such token")
	} else if err != nil {
		return certfleet.Token{}, fmt.Errorf("look up token: %w", translate(err))
	}
	return t, nil
}

// Token implements certfleet.TokenStore.
func (s *Store) Token(ctx context.Context, id string) (certfleet.Token, error) {
	if s.pool == nil {
		return certfleet.Token{}, errNotOpen
	}
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return certfleet.Token{}, certfleet.Errorf(certfleet.ENOTFOUND, "token %q not found", id)
	} else if err != nil {
		return certfleet.Token{}, fmt.Errorf("look up token %s: %w", id, translate(err))
	}
	return t, nil
}

// Tokens implements certfleet.TokenStore.
func (s *Store) Tokens(ctx context.Context) ([]certfleet.Token, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", translate(err))
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", translate(err))
	}
	return out, nil
}

// RevokeToken implements certfleet.TokenStore; revoking again keeps the
// first time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, at, id)
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", id, translate(err))
		}
		if tag.RowsAffected() == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "token %q not found", id)
		}
		return nil
	})
}

// RecordKeyRead implements certfleet.TokenStore. The row and its key_read
// audit event (certfleet.KeyReadEvent) are committed before it returns;
// both tables refuse updates and deletes (see migrations/0002_api.sql and
// 0005_audit.sql).
func (s *Store) RecordKeyRead(ctx context.Context, r certfleet.KeyRead) error {
	at := r.At
	if at.IsZero() {
		at = s.now()
	}
	r.At = at
	e, err := certfleet.PrepareEvent(certfleet.KeyReadEvent(r), at)
	if err != nil {
		return fmt.Errorf("record key read: %w", err)
	}
	// The key_reads row and its key_read audit event are one transaction.
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO key_reads (token_id, spec, key_type, issuance_id, serial, remote, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.TokenID, r.Spec, string(r.KeyType), r.IssuanceID, r.Serial, r.Remote, at)
		if err != nil {
			return fmt.Errorf("record key read: %w", translate(err))
		}
		return insertEvent(ctx, tx, e)
	})
}

// KeyReads implements certfleet.TokenStore.
func (s *Store) KeyReads(ctx context.Context, limit int) ([]certfleet.KeyRead, error) {
	if s.pool == nil {
		return nil, errNotOpen
	}
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT token_id, spec, key_type, issuance_id, serial, remote, at
		FROM key_reads ORDER BY id DESC LIMIT $1`, lim)
	if err != nil {
		return nil, fmt.Errorf("list key reads: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.KeyRead
	for rows.Next() {
		var (
			r  certfleet.KeyRead
			kt string
			at pgtype.Timestamptz
		)
		if err := rows.Scan(&r.TokenID, &r.Spec, &kt, &r.IssuanceID, &r.Serial, &r.Remote, &at); err != nil {
			return nil, fmt.Errorf("list key reads: %w", translate(err))
		}
		r.KeyType, r.At = certfleet.KeyType(kt), fromTS(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list key reads: %w", translate(err))
	}
	return out, nil
}
