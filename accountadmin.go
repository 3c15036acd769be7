package certfleet

import (
	"context"
	"time"
)

// Account statuses (RFC 8555 §7.1.2: "valid", "deactivated", "revoked").
// An account the store marks deactivated is never used, and never silently
// replaced by a new registration: the operator registers a new one
// explicitly (certfleet account register).
const (
	AccountValid       = "valid"
	AccountDeactivated = "deactivated"
)

// AccountAdmin manages stored ACME accounts: listing, key rollover (RFC 8555
// §7.3.5) and deactivation (§7.3.6). Safe for concurrent use (several
// instances too); durable when a method returns. Methods naming an account
// that is not stored return ENOTFOUND.
//
// A key rollover is crash-safe in two steps: BeginKeyRollover stores the new
// key as the account's pending key before the CA is asked; once the CA's
// answer about that key is known, FinishKeyRollover records it: the key
// becomes the account key (accepted) or is dropped. It records a fact about
// one key, so a late answer never promotes another rollover's key. A pending key found later (the process died between the CA's
// acceptance and the store write) means the outcome is unknown: the user
// of the account asks the CA which key it knows and finishes accordingly.
type AccountAdmin interface {
	// Accounts lists every stored account, ordered by name, then CA.
	Accounts(ctx context.Context) ([]Account, error)
	// BeginKeyRollover stores newKeyPEM as the pending key of (ca, name).
	// It fails with ECONFLICT when a rollover is already pending, and with
	// EINVALID when the account is deactivated.
	BeginKeyRollover(ctx context.Context, ca, name string, newKeyPEM []byte) error
	// FinishKeyRollover records the CA's answer about keyPEM, the key a
	// rollover of (ca, name) proposed. Accepted: keyPEM becomes the
	// account key and KeyChangedAt is set to at, whether or not it is
	// still the pending key (another process may have dropped it too
	// early; the CA's acceptance is what counts). Refused: nothing but
	// the pending key changes. Either way the pending key is cleared only
	// if it is keyPEM: a different pending key belongs to another
	// rollover, which settles it itself. It returns the account as stored
	// afterwards.
	FinishKeyRollover(ctx context.Context, ca, name string, keyPEM []byte, accepted bool, at time.Time) (Account, error)
	// DeactivateAccount marks (ca, name) deactivated at at (idempotent:
	// an account already deactivated keeps its first time) and drops a
	// pending key. It returns the account as stored afterwards.
	DeactivateAccount(ctx context.Context, ca, name string, at time.Time) (Account, error)
}
