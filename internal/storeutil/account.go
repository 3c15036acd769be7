package storeutil

import (
	"bytes"
	"time"

	"github.com/certfleet/certfleet"
)

// CheckRollover refuses a key rollover (certfleet.AccountAdmin) of a
// deactivated account or of one with a rollover already pending.
func CheckRollover(a certfleet.Account) error {
	if a.Deactivated() {
		return certfleet.Errorf(certfleet.EINVALID, "account %q is deactivated", a.Name)
	}
	if a.PendingKeyPEM != nil {
		return certfleet.Errorf(certfleet.ECONFLICT, "account %q has a key rollover pending", a.Name)
	}
	return nil
}

// StaleStatus is the status ReplaceAccount (certfleet.AccountReplacer)
// compares with: stale's, or valid when it has none.
func StaleStatus(stale certfleet.Account) string {
	if stale.Status == "" {
		return certfleet.AccountValid
	}
	return stale.Status
}

// FinishRollover says what FinishKeyRollover (certfleet.AccountAdmin)
// changes in account a for the CA's answer about keyPEM: whether keyPEM
// becomes the account key, and whether the pending key is cleared (only
// when it is keyPEM).
func FinishRollover(a certfleet.Account, keyPEM []byte, accepted bool) (setKey, clearPending bool, err error) {
	if len(keyPEM) == 0 {
		return false, false, certfleet.Errorf(certfleet.EINVALID, "finish key rollover of account %q: no key given", a.Name)
	}
	return accepted, a.PendingKeyPEM != nil && bytes.Equal(a.PendingKeyPEM, keyPEM), nil
}

// PrepareBlockedKey validates b for certfleet.KeyBlocklist.BlockKey and
// stamps a missing BlockedAt with now. It insists on a full key ID: a
// prefix in the blocklist would block nothing (lookups use full IDs).
func PrepareBlockedKey(b certfleet.BlockedKey, now time.Time) (certfleet.BlockedKey, error) {
	if err := certfleet.ValidKeyIDPrefix(b.KeyID); err != nil || len(b.KeyID) != 64 {
		return b, certfleet.Errorf(certfleet.EINVALID, "block key %q: a full key ID (64 hex digits) is required", b.KeyID)
	}
	if b.BlockedAt.IsZero() {
		b.BlockedAt = now
	}
	return b, nil
}
