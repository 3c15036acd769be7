package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/certfleet/certfleet"
)

var (
	_ certfleet.AccountStore    = (*Store)(nil)
	_ certfleet.AccountReplacer = (*Store)(nil)
)

const (
	accountCols  = `ca, name, contact, key_pem, url, created_at, status, deactivated_at, key_changed_at, pending_key`
	qAccountText = `SELECT ` + accountCols + ` FROM accounts WHERE ca = $1 AND name = $2`
)

var (
	qAccount       = SQL(qAccountText)
	qCreateAccount = SQL(`INSERT INTO accounts (ca, name, contact, key_pem, url, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ca, name) DO NOTHING`)
	qReplaceAccount = SQL(`UPDATE accounts SET contact = $1, key_pem = $2, url = $3, created_at = $4,
			status = 'valid', deactivated_at = NULL, key_changed_at = NULL, pending_key = NULL
		WHERE ca = $5 AND name = $6 AND url = $7 AND status = $8`)
)

// Account implements certfleet.AccountStore.
func (s *Store) Account(ctx context.Context, ca, name string) (certfleet.Account, error) {
	q, err := s.read(ctx)
	if err != nil {
		return certfleet.Account{}, err
	}
	a, err := s.scanAccount(q.QueryRow(qAccount, ca, name))
	if noRows(err) {
		return certfleet.Account{}, certfleet.Errorf(certfleet.ENOTFOUND, "account %q of %s not found", name, ca)
	} else if err != nil {
		return certfleet.Account{}, fmt.Errorf("load account %q of %s: %w", name, ca, err)
	}
	return a, nil
}

// scanAccount reads a row of accountCols and opens its keys.
func (s *Store) scanAccount(row Row) (certfleet.Account, error) {
	var (
		a            certfleet.Account
		contact      string
		key, pending []byte
	)
	if err := row.Scan(&a.CA, &a.Name, &contact, &key, &a.URL, &a.CreatedAt, &a.Status, &a.DeactivatedAt, &a.KeyChangedAt, &pending); err != nil {
		return certfleet.Account{}, err
	}
	if err := json.Unmarshal([]byte(contact), &a.Contact); err != nil {
		return certfleet.Account{}, fmt.Errorf("decode contact: %w", err)
	}
	var err error
	if a.KeyPEM, err = s.openKey(key, accountAAD(a.CA, a.Name)); err != nil {
		return certfleet.Account{}, fmt.Errorf("open account key: %w", err)
	}
	if pending != nil {
		if a.PendingKeyPEM, err = s.openKey(pending, pendingAccountAAD(a.CA, a.Name)); err != nil {
			return certfleet.Account{}, fmt.Errorf("open pending account key: %w", err)
		}
	}
	return a, nil
}

// CreateAccount implements certfleet.AccountStore: INSERT … ON CONFLICT DO
// NOTHING and the read back are one transaction. On PostgreSQL the insert
// waits for a concurrent creator (on any instance) to commit, and the read
// that follows sees the winner; on SQLite write transactions do not
// overlap. Either way, of two racing creators exactly one wins and both get
// its account. A zero CreatedAt is set to now.
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
	cj, err := contactJSON(a.Contact)
	if err != nil {
		return a, fmt.Errorf("create account %q of %s: %w", a.Name, a.CA, err)
	}
	key, err := s.sealKey(a.KeyPEM, accountAAD(a.CA, a.Name))
	if err != nil {
		return a, fmt.Errorf("create account %q of %s: %w", a.Name, a.CA, err)
	}
	var out certfleet.Account
	err = s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qCreateAccount, a.CA, a.Name, cj, key, a.URL, a.CreatedAt); err != nil {
			return err
		}
		out, err = s.scanAccount(tx.QueryRow(qAccount, a.CA, a.Name))
		return err
	})
	if err != nil {
		return certfleet.Account{}, fmt.Errorf("create account %q of %s: %w", a.Name, a.CA, err)
	}
	return out, nil
}

// ReplaceAccount implements certfleet.AccountReplacer: the conditional
// update and the read back are one transaction; a racing replacer waits
// for it (on the row lock on PostgreSQL, for the writer on SQLite) and
// then finds the URL already changed. The new account is valid, whatever
// the old one's status was.
func (s *Store) ReplaceAccount(ctx context.Context, stale certfleet.Account, next certfleet.Account) (certfleet.Account, error) {
	if next.CA == "" || next.Name == "" || len(next.KeyPEM) == 0 || next.URL == "" {
		return next, certfleet.Errorf(certfleet.EINVALID, "replace account: CA, name, key and URL required")
	}
	if next.CreatedAt.IsZero() {
		next.CreatedAt = s.now()
	}
	cj, err := contactJSON(next.Contact)
	if err != nil {
		return next, fmt.Errorf("replace account %q of %s: %w", next.Name, next.CA, err)
	}
	key, err := s.sealKey(next.KeyPEM, accountAAD(next.CA, next.Name))
	if err != nil {
		return next, fmt.Errorf("replace account %q of %s: %w", next.Name, next.CA, err)
	}
	var out certfleet.Account
	err = s.write(ctx, func(tx Tx) error {
		if _, err := tx.Exec(qReplaceAccount, cj, key, next.URL, next.CreatedAt,
			next.CA, next.Name, stale.URL, staleStatus(stale)); err != nil {
			return err
		}
		out, err = s.scanAccount(tx.QueryRow(qAccount, next.CA, next.Name))
		if noRows(err) {
			return certfleet.Errorf(certfleet.ENOTFOUND, "account %q of %s not found", next.Name, next.CA)
		}
		return err
	})
	if err != nil {
		return certfleet.Account{}, fmt.Errorf("replace account %q of %s: %w", next.Name, next.CA, err)
	}
	return out, nil
}

// contactJSON is the stored form of an account's contact URLs: a JSON
// array, empty for none.
func contactJSON(contact []string) (string, error) {
	if contact == nil {
		contact = []string{}
	}
	b, err := json.Marshal(contact)
	if err != nil {
		return "", fmt.Errorf("encode contact: %w", err)
	}
	return string(b), nil
}

// staleStatus is the status ReplaceAccount (certfleet.AccountReplacer)
// compares with: stale's, or valid when it has none.
func staleStatus(stale certfleet.Account) string {
	if stale.Status == "" {
		return certfleet.AccountValid
	}
	return stale.Status
}
