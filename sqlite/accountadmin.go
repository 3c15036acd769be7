package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/internal/storeutil"
)

var _ certfleet.AccountAdmin = (*Store)(nil)

// Accounts implements certfleet.AccountAdmin.
func (s *Store) Accounts(ctx context.Context) ([]certfleet.Account, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY name, ca`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", translate(err))
	}
	defer rows.Close()
	var out []certfleet.Account
	for rows.Next() {
		a, err := s.scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", translate(err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", translate(err))
	}
	return out, nil
}

// lockedAccount reads (ca, name) inside a write transaction.
func (s *Store) lockedAccount(tx *txn, ca, name string) (certfleet.Account, error) {
	a, err := s.scanAccount(tx.queryRow(qAccount, ca, name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, certfleet.Errorf(certfleet.ENOTFOUND, "account %q of %s is not registered", name, ca)
	}
	return a, translate(err)
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
	err = s.write(ctx, func(tx *txn) error {
		a, err := s.lockedAccount(tx, ca, name)
		if err != nil {
			return err
		}
		if err := storeutil.CheckRollover(a); err != nil {
			return err
		}
		_, err = tx.exec(`UPDATE accounts SET pending_key = ? WHERE ca = ? AND name = ?`, sealed, ca, name)
		return translate(err)
	})
	if err != nil {
		return fmt.Errorf("begin key rollover of account %q of %s: %w", name, ca, err)
	}
	return nil
}

// FinishKeyRollover implements certfleet.AccountAdmin: the accepted key is
// sealed under the account key's AAD into key_pem, and pending_key cleared
// when it is that key, in one transaction.
func (s *Store) FinishKeyRollover(ctx context.Context, ca, name string, keyPEM []byte, accepted bool, at time.Time) (certfleet.Account, error) {
	var out certfleet.Account
	err := s.write(ctx, func(tx *txn) error {
		a, err := s.lockedAccount(tx, ca, name)
		if err != nil {
			return err
		}
		setKey, clearPending, err := storeutil.FinishRollover(a, keyPEM, accepted)
		if err != nil {
			return err
		}
		if setKey {
			key, err := s.sealKey(keyPEM, accountAAD(ca, name))
			if err != nil {
				return err
			}
			if _, err = tx.exec(`UPDATE accounts SET key_pem = ?, key_changed_at = ? WHERE ca = ? AND name = ?`, key, tsReq(at), ca, name); err != nil {
				return translate(err)
			}
		}
		if clearPending {
			if _, err := tx.exec(`UPDATE accounts SET pending_key = NULL WHERE ca = ? AND name = ?`, ca, name); err != nil {
				return translate(err)
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
	err := s.write(ctx, func(tx *txn) error {
		if _, err := s.lockedAccount(tx, ca, name); err != nil {
			return err
		}
		if _, err := tx.exec(`UPDATE accounts SET status = 'deactivated', pending_key = NULL,
			deactivated_at = coalesce(deactivated_at, ?) WHERE ca = ? AND name = ?`, tsReq(at), ca, name); err != nil {
			return translate(err)
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
