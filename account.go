package certfleet

import (
	"context"
	"log/slog"
	"time"
)

// Account is an ACME account: created once per CA and account name, stored,
// and reused for every order.
type Account struct {
	// CA is the CA's directory URL; Name the account's name in the config
	// (DefaultAccount unless several accounts are configured).
	CA   string
	Name string
	// Contact holds the contact URLs (e.g. "mailto:ops@example.org").
	Contact []string
	// KeyPEM is the account's private key. Never logged.
	KeyPEM []byte
	// URL is the account's location at the CA (RFC 8555 §7.3: the
	// Location header of the newAccount response); it is the "kid".
	URL       string
	CreatedAt time.Time
	// Status is AccountValid or AccountDeactivated ("" reads as valid).
	Status string
	// DeactivatedAt is when the account was deactivated (zero: never).
	DeactivatedAt time.Time
	// KeyChangedAt is when the key was last rolled over (zero: never).
	KeyChangedAt time.Time
	// PendingKeyPEM is the new key of a key rollover whose outcome at the
	// CA is not yet recorded (see AccountAdmin). Never logged.
	PendingKeyPEM []byte
}

// Deactivated reports whether the account was deactivated.
func (a Account) Deactivated() bool { return a.Status == AccountDeactivated }

// LogValue keeps the key out of logs.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(slog.String(LogCA, a.CA), slog.String("name", a.Name), slog.String("url", a.URL))
}

// AccountStore keeps ACME accounts. Safe for concurrent use.
type AccountStore interface {
	// Account returns the account for (ca, name), or ENOTFOUND.
	Account(ctx context.Context, ca, name string) (Account, error)
	// CreateAccount stores a new account. When one already exists for
	// (ca, name) — another instance won the race — it returns that one
	// unchanged and the caller must use it instead.
	CreateAccount(ctx context.Context, a Account) (Account, error)
}

// AccountReplacer is an optional interface of an AccountStore: it replaces a
// stored account the CA no longer knows (RFC 8555 §6.7 accountDoesNotExist:
// the CA was reset, or forgot it) with a new one.
//
// ReplaceAccount is a compare-and-swap: it stores next (status valid) in
// place of the account of (next.CA, next.Name) only if that account's URL
// and status are still stale's (an empty stale.Status means valid), and
// returns the account stored afterwards — next, or the one another
// instance or an operator put there first, which the caller must use
// instead (or, if it is deactivated, not use). Comparing the status too
// means an operator's deactivation is never undone by a replacement
// decided before it.
type AccountReplacer interface {
	ReplaceAccount(ctx context.Context, stale Account, next Account) (Account, error)
}
