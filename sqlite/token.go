package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.TokenStore = (*Store)(nil)

const tokenColumns = `id, description, names, permissions, url_credential, hash, created_at, revoked_at`

// CreateToken implements certfleet.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t certfleet.Token) error {
	names, err := json.Marshal(t.Names)
	if err != nil {
		return fmt.Errorf("encode token names: %w", err)
	}
	perms, err := json.Marshal(t.Permissions)
	if err != nil {
		return fmt.Errorf("encode token permissions: %w", err)
	}
	if t.ID == "" || len(t.Hash) == 0 {
		return certfleet.Errorf(certfleet.EINVALID, "create token: ID and hash required")
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(`INSERT INTO api_tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Description, string(names), string(perms), boolInt(t.URLCredential), t.Hash, tsReq(created), ts(t.RevokedAt))
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.ID, translate(err))
		}
		return nil
	})
}

func scanToken(sc scanner) (certfleet.Token, error) {
	var (
		t              certfleet.Token
		names, perms   string
		urlCred        int
		created, revok sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Description, &names, &perms, &urlCred, &t.Hash, &created, &revok); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(names), &t.Names); err != nil {
		return t, fmt.Errorf("decode names of token %s: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(perms), &t.Permissions); err != nil {
		return t, fmt.Errorf("decode permissions of token %s: %w", t.ID, err)
	}
	t.URLCredential = urlCred != 0
	t.CreatedAt, t.RevokedAt = fromTS(created), fromTS(revok)
	return t, nil
}

// TokenByHash implements certfleet.TokenStore.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (certfleet.Token, error) {
	db, err := s.reader()
	if err != nil {
		return certfleet.Token{}, err
	}
	t, err := scanToken(db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, certfleet.Errorf(certfleet.ENOTFOUND, "no such token")
	} else if err != nil {
		return t, fmt.Errorf("look up token: %w", translate(err))
	}
	return t, nil
}

// Token implements certfleet.TokenStore.
func (s *Store) Token(ctx context.Context, id string) (certfleet.Token, error) {
	db, err := s.reader()
	if err != nil {
		return certfleet.Token{}, err
	}
	t, err := scanToken(db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, certfleet.Errorf(certfleet.ENOTFOUND, "token %q not found", id)
	} else if err != nil {
		return t, fmt.Errorf("look up token %s: %w", id, translate(err))
	}
	return t, nil
}

// Tokens implements certfleet.TokenStore.
func (s *Store) Tokens(ctx context.Context) ([]certfleet.Token, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, id`)
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
	return out, translate(rows.Err())
}

// RevokeToken implements certfleet.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *txn) error {
		res, err := tx.exec(`UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, tsReq(at), id)
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", id, translate(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "token %q not found", id)
		}
		return nil
	})
}

// RecordKeyRead implements certfleet.TokenStore. The key_reads row and its
// key_read audit event (certfleet.KeyReadEvent) are one transaction: there
// is never one without the other.
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
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.exec(`INSERT INTO key_reads (token_id, spec, key_type, issuance_id, serial, remote, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.TokenID, r.Spec, string(r.KeyType), r.IssuanceID, r.Serial, r.Remote, tsReq(at))
		if err != nil {
			return fmt.Errorf("record key read: %w", translate(err))
		}
		return insertEvent(tx, e)
	})
}

// KeyReads implements certfleet.TokenStore.
func (s *Store) KeyReads(ctx context.Context, limit int) ([]certfleet.KeyRead, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.QueryContext(ctx, `SELECT token_id, spec, key_type, issuance_id, serial, remote, at FROM key_reads ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list key reads: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.KeyRead
	for rows.Next() {
		var (
			r  certfleet.KeyRead
			kt string
			at sql.NullInt64
		)
		if err := rows.Scan(&r.TokenID, &r.Spec, &kt, &r.IssuanceID, &r.Serial, &r.Remote, &at); err != nil {
			return nil, fmt.Errorf("list key reads: %w", translate(err))
		}
		r.KeyType, r.At = certfleet.KeyType(kt), fromTS(at)
		out = append(out, r)
	}
	return out, translate(rows.Err())
}
