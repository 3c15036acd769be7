package storeutil

import (
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
