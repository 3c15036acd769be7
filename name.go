package certfleet

import "context"

// SpecWriter adds and withdraws single specs, for specs declared one at a
// time (over the API) rather than as a whole source (SyncSpecs). Safe for
// concurrent use; every method is atomic.
type SpecWriter interface {
	// PutSpec adds sp or updates the spec of that name, leaving every
	// other spec alone; a withdrawn spec is enabled again. Jobs follow as
	// in SyncSpecs: a new (spec, key type) gets a job due at once, a job
	// whose current issuance is of another revision becomes due at once,
	// and a job whose current certificate is of the same revision is not
	// touched (a withdrawn name wanted again reuses its certificate). A
	// name held by an enabled spec of another source is ECONFLICT.
	// changed reports whether anything was written.
	PutSpec(ctx context.Context, sp CertificateSpec) (changed bool, err error)
	// WithdrawSpec disables the spec and its jobs; the archive stays.
	// With destroyKeys it also erases the private keys of every issuance
	// of the spec, and forgets the jobs' current certificates, so a later
	// PutSpec orders new ones. ENOTFOUND when there is no such spec.
	WithdrawSpec(ctx context.Context, name string, destroyKeys bool) error
}
