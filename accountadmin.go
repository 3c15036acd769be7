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
// answer is known, FinishKeyRollover makes it the account key (accepted) or
// drops it. A pending key found later (the process died between the CA's
// acceptance and the store write) means the outcome is unknown: the user
// of the account asks the CA which key it knows and finishes accordingly.
type AccountAdmin interface {
	// Accounts lists every stored account, ordered by name, then CA.
	Accounts(ctx context.Context) ([]Account, error)
	// BeginKeyRollover stores newKeyPEM as the pending key of (ca, name).
	// It fails with ECONFLICT when a rollover is already pending, and with
	// EINVALID when the account is deactivated.
	BeginKeyRollover(ctx context.Context, ca, name string, newKeyPEM []byte) error
	// FinishKeyRollover ends the pending rollover of (ca, name): when
	// accepted, the pending key becomes the account key and KeyChangedAt
	// is set to at; otherwise the pending key is dropped. It returns the
	// account as stored afterwards; ECONFLICT when no rollover is pending.
	FinishKeyRollover(ctx context.Context, ca, name string, accepted bool, at time.Time) (Account, error)
	// DeactivateAccount marks (ca, name) deactivated at at (idempotent:
	// an account already deactivated keeps its first time) and drops a
	// pending key. It returns the account as stored afterwards.
	DeactivateAccount(ctx context.Context, ca, name string, at time.Time) (Account, error)
}
