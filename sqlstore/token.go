package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.TokenStore = (*Store)(nil)

const tokenColumns = `id, description, names, permissions, url_credential, hash, created_at, revoked_at, tenant`

var (
	qCreateToken = SQL(`INSERT INTO api_tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`)
	qTokenByHash = SQL(`SELECT ` + tokenColumns + ` FROM api_tokens WHERE hash = $1`)
	qToken       = SQL(`SELECT ` + tokenColumns + ` FROM api_tokens WHERE id = $1`)
	qTokens      = SQL(`SELECT ` + tokenColumns + ` FROM api_tokens ORDER BY created_at, id`)
	qRevokeToken = SQL(`UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`)

	qInsertKeyRead = SQL(`INSERT INTO key_reads (token_id, spec, key_type, issuance_id, serial, remote, at, count)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`)
	// Two forms of the listing: SQLite refuses LIMIT NULL, PostgreSQL a
	// negative LIMIT, so "all" is the statement without one.
	qKeyReads      = SQL(`SELECT token_id, spec, key_type, issuance_id, serial, remote, at, count FROM key_reads ORDER BY id DESC`)
	qKeyReadsLimit = SQL(`SELECT token_id, spec, key_type, issuance_id, serial, remote, at, count FROM key_reads ORDER BY id DESC LIMIT $1`)
)

// CreateToken implements certfleet.TokenStore. Only the token's hash is
// stored; a duplicate ID or hash is ECONFLICT. A zero CreatedAt is set to
// now.
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
	return s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qCreateToken, t.ID, t.Description, string(names), string(perms), t.URLCredential, t.Hash,
			created, NullTime(t.RevokedAt), t.Tenant)
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.ID, err)
		}
		return nil
	})
}

func scanToken(row Row) (certfleet.Token, error) {
	var (
		t            certfleet.Token
		names, perms string
	)
	if err := row.Scan(&t.ID, &t.Description, &names, &perms, &t.URLCredential, &t.Hash, &t.CreatedAt, &t.RevokedAt, &t.Tenant); err != nil {
		return certfleet.Token{}, err
	}
	if err := json.Unmarshal([]byte(names), &t.Names); err != nil {
		return certfleet.Token{}, fmt.Errorf("decode names of token %s: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(perms), &t.Permissions); err != nil {
		return certfleet.Token{}, fmt.Errorf("decode permissions of token %s: %w", t.ID, err)
	}
	return t, nil
}

// TokenByHash implements certfleet.TokenStore: one indexed lookup (hash is
// UNIQUE), outside any transaction (on SQLite's read pool).
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (certfleet.Token, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Token{}, err
	}
	t, err := scanToken(q.QueryRow(qTokenByHash, hash))
	if noRows(err) {
		return certfleet.Token{}, certfleet.Errorf(certfleet.ENOTFOUND, "no such token")
	} else if err != nil {
		return certfleet.Token{}, fmt.Errorf("look up token: %w", err)
	}
	return t, nil
}

// Token implements certfleet.TokenStore: one primary-key lookup.
func (s *Store) Token(ctx context.Context, id string) (certfleet.Token, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Token{}, err
	}
	t, err := scanToken(q.QueryRow(qToken, id))
	if noRows(err) {
		return certfleet.Token{}, certfleet.Errorf(certfleet.ENOTFOUND, "token %q not found", id)
	} else if err != nil {
		return certfleet.Token{}, fmt.Errorf("look up token %s: %w", id, err)
	}
	return t, nil
}

// Tokens implements certfleet.TokenStore.
func (s *Store) Tokens(ctx context.Context) ([]certfleet.Token, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qTokens)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements certfleet.TokenStore; revoking again keeps the
// first time. A zero at is now.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(qRevokeToken, at, id)
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", id, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "token %q not found", id)
		}
		return nil
	})
}

// RecordKeyRead implements certfleet.TokenStore. The key_reads row and its
// key_read audit event (certfleet.KeyReadEvent) are one transaction, so
// there is never one without the other, committed before it returns; both
// tables refuse updates and deletes (the drivers' 0002_api.sql and
// 0005_audit.sql).
func (s *Store) RecordKeyRead(ctx context.Context, r certfleet.KeyRead) error {
	if r.At.IsZero() {
		r.At = s.now()
	}
	e, err := certfleet.PrepareEvent(certfleet.KeyReadEvent(r), r.At)
	if err != nil {
		return fmt.Errorf("record key read: %w", err)
	}
	return s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qInsertKeyRead, r.TokenID, r.Spec, string(r.KeyType), r.IssuanceID, r.Serial, r.Remote, r.At, max(r.Count, 1))
		if err != nil {
			return fmt.Errorf("record key read: %w", err)
		}
		return insertEvent(tx, e)
	})
}

// KeyReads implements certfleet.TokenStore.
func (s *Store) KeyReads(ctx context.Context, limit int) ([]certfleet.KeyRead, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	var rows Rows
	if limit > 0 {
		rows, err = q.Query(qKeyReadsLimit, limit)
	} else {
		rows, err = q.Query(qKeyReads)
	}
	if err != nil {
		return nil, fmt.Errorf("list key reads: %w", err)
	}
	defer rows.Close()
	var out []certfleet.KeyRead
	for rows.Next() {
		var (
			r     certfleet.KeyRead
			kt    string
			count int
		)
		if err := rows.Scan(&r.TokenID, &r.Spec, &kt, &r.IssuanceID, &r.Serial, &r.Remote, &r.At, &count); err != nil {
			return nil, fmt.Errorf("list key reads: %w", err)
		}
		r.KeyType = certfleet.KeyType(kt)
		if count > 1 {
			r.Count = count // one read reads back as 0, as KeyRead documents
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list key reads: %w", err)
	}
	return out, nil
}
