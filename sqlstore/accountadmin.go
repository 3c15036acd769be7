package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
)

var _ certfleet.AccountAdmin = (*Store)(nil)

var (
	qAccounts = SQL(`SELECT ` + accountCols + ` FROM accounts ORDER BY name, ca`)
	// qLockedAccount locks the row on PostgreSQL until the transaction
	// ends; a SQLite write transaction excludes every other writer already.
	qLockedAccount     = SQLEach(qAccountText, qAccountText+` FOR UPDATE`)
	qSetPendingKey     = SQL(`UPDATE accounts SET pending_key = $1 WHERE ca = $2 AND name = $3`)
	qSetAccountKey     = SQL(`UPDATE accounts SET key_pem = $1, key_changed_at = $2 WHERE ca = $3 AND name = $4`)
	qClearPendingKey   = SQL(`UPDATE accounts SET pending_key = NULL WHERE ca = $1 AND name = $2`)
	qDeactivateAccount = SQL(`UPDATE accounts SET status = 'deactivated', pending_key = NULL,
		deactivated_at = coalesce(deactivated_at, $1) WHERE ca = $2 AND name = $3`)
)

// Accounts implements certfleet.AccountAdmin.
func (s *Store) Accounts(ctx context.Context) ([]certfleet.Account, error) {
	q, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(qAccounts)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []certfleet.Account
	for rows.Next() {
		a, err := s.scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// lockedAccount reads (ca, name) inside a write transaction, which no
// other writer of the row can interleave with until it ends.
func (s *Store) lockedAccount(tx Tx, ca, name string) (certfleet.Account, error) {
	a, err := s.scanAccount(tx.QueryRow(qLockedAccount, ca, name))
	if noRows(err) {
		return certfleet.Account{}, certfleet.Errorf(certfleet.ENOTFOUND, "account %q of %s is not registered", name, ca)
	}
	return a, err
}

// BeginKeyRollover implements certfleet.AccountAdmin.
func (s *Store) BeginKeyRollover(ctx context.Context, ca, name string, newKeyPEM []byte) error {
	if len(newKeyPEM) == 0 {
		return certfleet.Errorf(certfleet.EINVALID, "key rollover of account %q: new key required", name)
	}
	sealed, err := s.sealKey(newKeyPEM, pendingAccountAAD(ca, name))
	if err != nil {
		return fmt.Errorf("key rollover of account %q of %s: %w", name, ca, err)
	}
	err = s.write(ctx, func(tx Tx) error {
		a, err := s.lockedAccount(tx, ca, name)
		if err != nil {
			return err
		}
		if err := checkRollover(a); err != nil {
			return err
		}
		_, err = tx.Exec(qSetPendingKey, sealed, ca, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("begin key rollover of account %q of %s: %w", name, ca, err)
	}
	return nil
}

// FinishKeyRollover implements certfleet.AccountAdmin: the accepted key is
// sealed under the account key's AAD into key_pem, and pending_key cleared
// when it is that key, in one transaction holding the row.
func (s *Store) FinishKeyRollover(ctx context.Context, ca, name string, keyPEM []byte, accepted bool, at time.Time) (certfleet.Account, error) {
	var out certfleet.Account
	err := s.write(ctx, func(tx Tx) error {
		a, err := s.lockedAccount(tx, ca, name)
		if err != nil {
			return err
		}
		setKey, clearPending, err := finishRollover(a, keyPEM, accepted)
		if err != nil {
			return err
		}
		if setKey {
			key, err := s.sealKey(keyPEM, accountAAD(ca, name))
			if err != nil {
				return err
			}
			if _, err = tx.Exec(qSetAccountKey, key, at, ca, name); err != nil {
				return err
			}
		}
		if clearPending {
			if _, err := tx.Exec(qClearPendingKey, ca, name); err != nil {
				return err
			}
		}
		out, err = s.lockedAccount(tx, ca, name)
		return err
	})
	if err != nil {
		return certfleet.Account{}, fmt.Errorf("finish key rollover of account %q of %s: %w", name, ca, err)
	}
	return out, nil
}

// DeactivateAccount implements certfleet.AccountAdmin.
func (s *Store) DeactivateAccount(ctx context.Context, ca, name string, at time.Time) (certfleet.Account, error) {
	var out certfleet.Account
	err := s.write(ctx, func(tx Tx) error {
		if _, err := s.lockedAccount(tx, ca, name); err != nil {
			return err
		}
		if _, err := tx.Exec(qDeactivateAccount, at, ca, name); err != nil {
			return err
		}
		var err error
		out, err = s.lockedAccount(tx, ca, name)
		return err
	})
	if err != nil {
		return certfleet.Account{}, fmt.Errorf("deactivate account %q of %s: %w", name, ca, err)
	}
	return out, nil
}

// checkRollover refuses a key rollover (certfleet.AccountAdmin) of a
// deactivated account or of one with a rollover already pending.
func checkRollover(a certfleet.Account) error {
	if a.Deactivated() {
		return certfleet.Errorf(certfleet.EINVALID, "account %q is deactivated", a.Name)
	}
	if a.PendingKeyPEM != nil {
		return certfleet.Errorf(certfleet.ECONFLICT, "account %q has a key rollover pending", a.Name)
	}
	return nil
}

// finishRollover says what FinishKeyRollover (certfleet.AccountAdmin)
// changes in account a for the CA's answer about keyPEM: whether keyPEM
// becomes the account key, and whether the pending key is cleared (only
// when it is keyPEM).
func finishRollover(a certfleet.Account, keyPEM []byte, accepted bool) (setKey, clearPending bool, err error) {
	if len(keyPEM) == 0 {
		return false, false, certfleet.Errorf(certfleet.EINVALID, "finish key rollover of account %q: no key given", a.Name)
	}
	return accepted, a.PendingKeyPEM != nil && bytes.Equal(a.PendingKeyPEM, keyPEM), nil
}
