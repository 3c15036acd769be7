package certfleet

import (
	"context"
	"strings"
	"time"
)

// SourceInventoryPrefix starts the spec source of an inventory source
// (issue 18): the certificates a PostgreSQL table, an LDAP directory or a
// directory of TOML files declares are synced as source
// "inventory:NAME", so that each source withdraws only its own specs,
// never the config file's, the API's or another source's.
const SourceInventoryPrefix = "inventory:"

// InventorySource returns the spec source of the inventory source named
// name.
func InventorySource(name string) string { return SourceInventoryPrefix + name }

// IsInventorySource reports whether a spec source is an inventory source's.
func IsInventorySource(source string) bool { return strings.HasPrefix(source, SourceInventoryPrefix) }

// InventoryStore keeps the withdrawals an inventory source has pending: a
// spec its source no longer declares is withdrawn only once it has been
// missing for the source's grace period, counted from when it was first
// seen missing by any instance, across restarts (a deleted LDAP entry must
// not withdraw at once). Safe for concurrent use.
type InventoryStore interface {
	// PendingWithdrawals returns the names of source's specs seen missing,
	// each with when it was first seen missing; an empty map when none.
	PendingWithdrawals(ctx context.Context, source string) (map[string]time.Time, error)
	// SetPendingWithdrawals replaces source's pending withdrawals by
	// pending (nil or empty clears them). Atomic; other sources' are not
	// touched.
	SetPendingWithdrawals(ctx context.Context, source string, pending map[string]time.Time) error
}
