package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
)

var _ certfleet.IdentityStore = (*Store)(nil)

const (
	enrollTokenColumns = `id, description, names, permissions, tenant, hash, created_at, expires_at, used_at, used_by`
	identityColumns    = `id, name, names, permissions, tenant, enroll_token, serial, not_after, renewed_at, created_at, revoked_at`
)

var (
	// Of instances creating the CA at once, the primary key lets exactly
	// one in (callers give the first CA a fixed ID).
	qCreateIdentityCA = SQL(`INSERT INTO identity_cas (id, cert_pem, key_pem, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`)
	qIdentityCAs = SQL(`SELECT id, cert_pem, key_pem, created_at FROM identity_cas ORDER BY created_at, id`)

	qCreateEnrollToken = SQL(`INSERT INTO enroll_tokens (` + enrollTokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`)
	qEnrollTokens      = SQL(`SELECT ` + enrollTokenColumns + ` FROM enroll_tokens ORDER BY created_at, id`)
	// qUseEnrollToken is the single use: one statement that only an
	// unused, unexpired token passes, so of two enrollments at once the
	// second finds used_at set (PostgreSQL re-checks the WHERE clause on
	// the row the first one updated; SQLite has one writer).
	qUseEnrollToken = SQL(`UPDATE enroll_tokens SET used_at = $1, used_by = $2
		WHERE hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING ` + enrollTokenColumns)
	qCreateIdentity = SQL(`INSERT INTO identities (` + identityColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`)
	qIdentity       = SQL(`SELECT ` + identityColumns + ` FROM identities WHERE id = $1`)
	qIdentities     = SQL(`SELECT ` + identityColumns + ` FROM identities ORDER BY created_at, id`)
	qRenewIdentity  = SQL(`UPDATE identities SET serial = $1, not_after = $2, renewed_at = $3 WHERE id = $4 AND revoked_at IS NULL`)
	qRevokeIdentity = SQL(`UPDATE identities SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`)
)

func identityCAAAD(id string) []byte { return seal.AAD("identity_cas.key_pem", id) }

// CreateIdentityCA implements certfleet.IdentityStore. The CA's key is
// sealed like every private key (sealKey), bound to the CA's ID.
func (s *Store) CreateIdentityCA(ctx context.Context, ca certfleet.IdentityCA) (certfleet.IdentityCA, error) {
	if ca.ID == "" || len(ca.CertPEM) == 0 || len(ca.KeyPEM) == 0 {
		return certfleet.IdentityCA{}, certfleet.Errorf(certfleet.EINVALID, "create identity CA: ID, certificate and key required")
	}
	key, err := s.sealKey(ca.KeyPEM, identityCAAAD(ca.ID))
	if err != nil {
		return certfleet.IdentityCA{}, fmt.Errorf("create identity CA: %w", err)
	}
	if ca.CreatedAt.IsZero() {
		ca.CreatedAt = s.now()
	}
	err = s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qCreateIdentityCA, ca.ID, string(ca.CertPEM), key, ca.CreatedAt)
		return err
	})
	if err != nil {
		return certfleet.IdentityCA{}, fmt.Errorf("create identity CA: %w", err)
	}
	cas, err := s.IdentityCAs(ctx)
	if err != nil {
		return certfleet.IdentityCA{}, err
	}
	if len(cas) == 0 {
		return certfleet.IdentityCA{}, fmt.Errorf("create identity CA: stored, but not found again")
	}
	return cas[0], nil
}

// IdentityCAs implements certfleet.IdentityStore.
func (s *Store) IdentityCAs(ctx context.Context) ([]certfleet.IdentityCA, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qIdentityCAs)
	if err != nil {
		return nil, fmt.Errorf("load identity CAs: %w", err)
	}
	defer rows.Close()
	out := []certfleet.IdentityCA{}
	for rows.Next() {
		var (
			ca        certfleet.IdentityCA
			cert      string
			sealedKey []byte
		)
		if err := rows.Scan(&ca.ID, &cert, &sealedKey, &ca.CreatedAt); err != nil {
			return nil, fmt.Errorf("load identity CAs: %w", err)
		}
		ca.CertPEM = []byte(cert)
		if ca.KeyPEM, err = s.openKey(sealedKey, identityCAAAD(ca.ID)); err != nil {
			return nil, fmt.Errorf("open the key of identity CA %s: %w", ca.ID, err)
		}
		out = append(out, ca)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load identity CAs: %w", err)
	}
	return out, nil
}

// CreateEnrollToken implements certfleet.IdentityStore.
func (s *Store) CreateEnrollToken(ctx context.Context, t certfleet.EnrollToken) error {
	if t.ID == "" || len(t.Hash) == 0 || t.ExpiresAt.IsZero() {
		return certfleet.Errorf(certfleet.EINVALID, "create enrollment token: ID, hash and expiry required")
	}
	names, perms, err := encodeScope(t.Names, t.Permissions)
	if err != nil {
		return err
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	return s.write(ctx, func(tx Tx) error {
		_, err := tx.Exec(qCreateEnrollToken, t.ID, t.Description, names, perms, t.Tenant, t.Hash, t.CreatedAt, t.ExpiresAt,
			NullTime(t.UsedAt), t.UsedBy)
		if err != nil {
			return fmt.Errorf("create enrollment token %s: %w", t.ID, err)
		}
		return nil
	})
}

func encodeScope(names []string, perms []certfleet.Permission) (string, string, error) {
	n, err := json.Marshal(names)
	if err != nil {
		return "", "", fmt.Errorf("encode names: %w", err)
	}
	p, err := json.Marshal(perms)
	if err != nil {
		return "", "", fmt.Errorf("encode permissions: %w", err)
	}
	return string(n), string(p), nil
}

func decodeScope(what, names, perms string, n *[]string, p *[]certfleet.Permission) error {
	if err := json.Unmarshal([]byte(names), n); err != nil {
		return fmt.Errorf("decode names of %s: %w", what, err)
	}
	if err := json.Unmarshal([]byte(perms), p); err != nil {
		return fmt.Errorf("decode permissions of %s: %w", what, err)
	}
	return nil
}

func scanEnrollToken(row Row) (certfleet.EnrollToken, error) {
	var (
		t            certfleet.EnrollToken
		names, perms string
	)
	if err := row.Scan(&t.ID, &t.Description, &names, &perms, &t.Tenant, &t.Hash, &t.CreatedAt, &t.ExpiresAt, &t.UsedAt, &t.UsedBy); err != nil {
		return t, err
	}
	return t, decodeScope("enrollment token "+t.ID, names, perms, &t.Names, &t.Permissions)
}

// EnrollTokens implements certfleet.IdentityStore.
func (s *Store) EnrollTokens(ctx context.Context) ([]certfleet.EnrollToken, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qEnrollTokens)
	if err != nil {
		return nil, fmt.Errorf("list enrollment tokens: %w", err)
	}
	defer rows.Close()
	var out []certfleet.EnrollToken
	for rows.Next() {
		t, err := scanEnrollToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list enrollment tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enrollment tokens: %w", err)
	}
	return out, nil
}

// Enroll implements certfleet.IdentityStore: the token is used and the
// identity created in one transaction.
func (s *Store) Enroll(ctx context.Context, hash []byte, id certfleet.Identity) (certfleet.Identity, error) {
	if id.ID == "" || id.Serial == "" || id.NotAfter.IsZero() {
		return certfleet.Identity{}, certfleet.Errorf(certfleet.EINVALID, "enroll: ID, serial and expiry required")
	}
	if id.CreatedAt.IsZero() {
		id.CreatedAt = s.now()
	}
	id.RenewedAt = id.CreatedAt
	err := s.write(ctx, func(tx Tx) error {
		t, err := scanEnrollToken(tx.QueryRow(qUseEnrollToken, id.CreatedAt, id.ID, hash))
		if noRows(err) {
			return certfleet.Errorf(certfleet.EUNAUTHORIZED, "the enrollment token is not valid (unknown, expired or used already)")
		} else if err != nil {
			return fmt.Errorf("use enrollment token: %w", err)
		}
		id.Names, id.Permissions, id.Tenant, id.EnrollToken = t.Names, t.Permissions, t.Tenant, t.ID
		names, perms, err := encodeScope(id.Names, id.Permissions)
		if err != nil {
			return err
		}
		_, err = tx.Exec(qCreateIdentity, id.ID, id.Name, names, perms, id.Tenant, id.EnrollToken, id.Serial, id.NotAfter,
			id.RenewedAt, id.CreatedAt, NullTime(id.RevokedAt))
		if err != nil {
			return fmt.Errorf("create identity %s: %w", id.ID, err)
		}
		return nil
	})
	if err != nil {
		return certfleet.Identity{}, err
	}
	return id, nil
}

func scanIdentity(row Row) (certfleet.Identity, error) {
	var (
		i            certfleet.Identity
		names, perms string
	)
	if err := row.Scan(&i.ID, &i.Name, &names, &perms, &i.Tenant, &i.EnrollToken, &i.Serial, &i.NotAfter, &i.RenewedAt,
		&i.CreatedAt, &i.RevokedAt); err != nil {
		return i, err
	}
	return i, decodeScope("identity "+i.ID, names, perms, &i.Names, &i.Permissions)
}

// Identity implements certfleet.IdentityStore: one primary-key lookup.
func (s *Store) Identity(ctx context.Context, id string) (certfleet.Identity, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Identity{}, err
	}
	i, err := scanIdentity(q.QueryRow(qIdentity, id))
	if noRows(err) {
		return certfleet.Identity{}, certfleet.Errorf(certfleet.ENOTFOUND, "identity %q not found", id)
	} else if err != nil {
		return certfleet.Identity{}, fmt.Errorf("look up identity %s: %w", id, err)
	}
	return i, nil
}

// Identities implements certfleet.IdentityStore.
func (s *Store) Identities(ctx context.Context) ([]certfleet.Identity, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qIdentities)
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Identity
	for rows.Next() {
		i, err := scanIdentity(rows)
		if err != nil {
			return nil, fmt.Errorf("list identities: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	return out, nil
}

// RenewIdentity implements certfleet.IdentityStore.
func (s *Store) RenewIdentity(ctx context.Context, id, serial string, notAfter, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(qRenewIdentity, serial, notAfter, at, id)
		if err != nil {
			return fmt.Errorf("renew identity %s: %w", id, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.EUNAUTHORIZED, "identity %q is unknown or revoked", id)
		}
		return nil
	})
}

// RevokeIdentity implements certfleet.IdentityStore; the notification
// (Tx.Notify) makes every instance re-read the revoked identities at once.
func (s *Store) RevokeIdentity(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	return s.write(ctx, func(tx Tx) error {
		n, err := tx.Exec(qRevokeIdentity, at, id)
		if err != nil {
			return fmt.Errorf("revoke identity %s: %w", id, err)
		}
		if n == 0 {
			return certfleet.Errorf(certfleet.ENOTFOUND, "identity %q not found", id)
		}
		return tx.Notify()
	})
}
