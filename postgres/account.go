package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

const (
	accountCols = `ca, name, contact, key_pem, url, created_at, status, deactivated_at, key_changed_at, pending_key`
	qAccount    = `SELECT ` + accountCols + ` FROM accounts WHERE ca = $1 AND name = $2`
)

// Account implements certfleet.AccountStore.
func (s *Store) Account(ctx context.Context, ca, name string) (certfleet.Account, error) {
	if s.pool == nil {
		return certfleet.Account{}, errNotOpen
	}
	a, err := s.scanAccount(s.pool.QueryRow(ctx, qAccount, ca, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, certfleet.Errorf(certfleet.ENOTFOUND, "account %q of %s not found", name, ca)
	} else if err != nil {
		return a, fmt.Errorf("load account %q of %s: %w", name, ca, translate(err))
	}
	return a, nil
}

func (s *Store) scanAccount(sc scanner) (certfleet.Account, error) {
	var (
		a       certfleet.Account
		contact string
		key     []byte
		created time.Time
		deact   pgtype.Timestamptz
		changed pgtype.Timestamptz
		pending []byte
	)
	if err := sc.Scan(&a.CA, &a.Name, &contact, &key, &a.URL, &created, &a.Status, &deact, &changed, &pending); err != nil {
		return a, err
	}
	a.DeactivatedAt, a.KeyChangedAt = fromTS(deact), fromTS(changed)
	if err := json.Unmarshal([]byte(contact), &a.Contact); err != nil {
		return a, fmt.Errorf("decode contact: %w", err)
	}
	a.CreatedAt = created.UTC()
	var err error
	if a.KeyPEM, err = s.openKey(key, accountAAD(a.CA, a.Name)); err != nil {
		return a, fmt.Errorf("open account key: %w", err)
	}
	if pending != nil {
		if a.PendingKeyPEM, err = s.openKey(pending, pendingAccountAAD(a.CA, a.Name)); err != nil {
			return a, fmt.Errorf("open pending account key: %w", err)
		}
	}
	return a, nil
}

// CreateAccount implements certfleet.AccountStore. INSERT … ON CONFLICT DO
// NOTHING waits for a concurrent creator (on any instance) to commit, and
// the read that follows sees the winner, so of two racing creators exactly
// one wins and both get its account. A zero CreatedAt is set to now.
func (s *Store) CreateAccount(ctx context.Context, a certfleet.Account) (certfleet.Account, error) {
	if a.CA == "" || a.Name == "" {
		return a, certfleet.Errorf(certfleet.EINVALID, "create account: CA and name required")
	}
	if len(a.KeyPEM) == 0 {
		return a, certfleet.Errorf(certfleet.EINVALID, "create account %q of %s: key required", a.Name, a.CA)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	contact := a.Contact
	if contact == nil {
		contact = []string{}
	}
	cj, err := json.Marshal(contact)
	if err != nil {
		return a, fmt.Errorf("create account %q of %s: encode contact: %w", a.Name, a.CA, err)
	}
	key, err := s.sealKey(a.KeyPEM, accountAAD(a.CA, a.Name))
	if err != nil {
		return a, fmt.Errorf("create account %q of %s: %w", a.Name, a.CA, err)
	}
	var out certfleet.Account
	err = s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO accounts (ca, name, contact, key_pem, url, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ca, name) DO NOTHING`,
			a.CA, a.Name, string(cj), key, a.URL, a.CreatedAt); err != nil {
			return translate(err)
		}
		out, err = s.scanAccount(tx.QueryRow(ctx, qAccount, a.CA, a.Name))
		return translate(err)
	})
	if err != nil {
		return certfleet.Account{}, fmt.Errorf("create account %q of %s: %w", a.Name, a.CA, err)
	}
	return out, nil
}

var _ certfleet.AccountReplacer = (*Store)(nil)

// ReplaceAccount implements certfleet.AccountReplacer: the conditional
// update and the read back are one transaction; a racing replacer waits on
// the row lock and then finds the URL already changed. The new account is
// valid, whatever the old one's status was.
func (s *Store) ReplaceAccount(ctx context.Context, stale certfleet.Account, next certfleet.Account) (certfleet.Account, error) {
	if next.CA == "" || next.Name == "" || len(next.KeyPEM) == 0 || next.URL == "" {
		return next, certfleet.Errorf(certfleet.EINVALID, "replace account: CA, name, key and URL required")
	}
	if next.CreatedAt.IsZero() {
		next.CreatedAt = s.now()
	}
	contact := next.Contact
	if contact == nil {
		contact = []string{}
	}
	cj, err := json.Marshal(contact)
	if err != nil {
		return next, fmt.Errorf("replace account %q of %s: encode contact: %w", next.Name, next.CA, err)
	}
	key, err := s.sealKey(next.KeyPEM, accountAAD(next.CA, next.Name))
	if err != nil {
		return next, fmt.Errorf("replace account %q of %s: %w", next.Name, next.CA, err)
	}
	var out certfleet.Account
	err = s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE accounts SET contact = $1, key_pem = $2, url = $3, created_at = $4,
			status = 'valid', deactivated_at = NULL, key_changed_at = NULL, pending_key = NULL
			WHERE ca = $5 AND name = $6 AND url = $7 AND status = $8`,
			string(cj), key, next.URL, next.CreatedAt, next.CA, next.Name, stale.URL, storeutil.StaleStatus(stale)); err != nil {
			return translate(err)
		}
		out, err = s.scanAccount(tx.QueryRow(ctx, qAccount, next.CA, next.Name))
		if errors.Is(err, pgx.ErrNoRows) {
			return certfleet.Errorf(certfleet.ENOTFOUND, "account %q of %s not found", next.Name, next.CA)
		}
		return translate(err)
	})
	if err != nil {
		return certfleet.Account{}, fmt.Errorf("replace account %q of %s: %w", next.Name, next.CA, err)
	}
	return out, nil
}
