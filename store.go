package certfleet

import "context"

// SpecStore keeps certificate specs and creates their jobs.
type SpecStore interface {
	// SyncSpecs makes the store's enabled specs of source equal to specs:
	// it adds new ones, updates changed ones, and disables the source's
	// specs that are not listed (their archive stays). It creates a job,
	// due at once, for each new (spec, key type), disables the jobs of
	// removed key types, and makes a job due at once when its spec
	// revision differs from its current issuance's. Atomic.
	SyncSpecs(ctx context.Context, source string, specs []CertificateSpec) (SyncResult, error)
	// Spec returns one spec by name, or ENOTFOUND.
	Spec(ctx context.Context, name string) (CertificateSpec, error)
	// Specs lists specs ordered by name.
	Specs(ctx context.Context, f SpecFilter) ([]CertificateSpec, error)
}

// Store is everything certfleet persists. Implementations (sqlite, postgres)
// must be safe for concurrent use, durable once a method returns, and keep
// every multi-row change atomic, so a crash at any point leaves either the
// old state or the new one.
type Store interface {
	SpecStore
	JobStore
	ArchiveStore
	AccountStore
	ChallengeStore
	AuditStore
	SecretStore
	IncidentStore  // alert incidents (alert.go)
	AccountAdmin   // issue 6 §7: account list, key rollover, deactivation
	KeyBlocklist   // issue 6 §8: keys declared compromised are never reused
	RateLimitStore // issue 6 §6: rate-limit budgets (ratelimit.go)
	InventoryStore // issue 18: withdrawals an inventory source has pending (inventory.go)
	DeliveryStore  // issue 18 §2: audit events owed to hooks (delivery.go)
	StatsStore     // job counts and current certificates, a page at a time (stats.go)
	ReadinessStore // issue 14: names waiting for their self-test to pass (readiness.go)
	NameIndex      // issue 13: a name's certificate and the listings' pages, by index (listing.go)
	Close() error
}
