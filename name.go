package certfleet

import (
	"context"
	"time"
)

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

// SpecPut is one write of a SpecBatchWriter batch: a spec to put, and the
// audit event that records it.
type SpecPut struct {
	// Spec is put as SpecWriter.PutSpec puts it.
	Spec CertificateSpec
	// Event, if set, is appended to the audit trail in the same
	// transaction when the put changes something (not when the spec was
	// already as asked, nor when it is refused): a change is never
	// committed without its record, nor its record without it.
	Event *Event
}

// SpecPutResult is the outcome of one SpecPut.
type SpecPutResult struct {
	// Changed reports whether the put wrote anything.
	Changed bool
	// CreatedAt, when not zero, is when the put created the certificate
	// (it had no row, withdrawn or not), as the store keeps it: its jobs
	// are new, due at CreatedAt, with no attempt, current certificate,
	// waiting name or agent report, so that the API answers with its
	// status without reading them back (issue 13: four reads per PUT).
	CreatedAt time.Time
	// Err is the put's refusal (EINVALID, ECONFLICT, EQUOTA): that put
	// wrote nothing, and the others of its batch stand.
	Err error
}

// SpecBatchWriter is an optional interface of a SpecWriter that commits
// many puts at once: the API gathers the PUTs that arrive while a commit
// is under way into the next one (group commit), so that N clients cost
// one transaction, one lock and one durable flush instead of N (issue
// 13: on PostgreSQL each commit waits for the disk).
type SpecBatchWriter interface {
	// PutSpecs applies puts in order in one transaction, each as PutSpec
	// would on the state the earlier ones left, and returns one result
	// per put. A put that is refused gets its error in its result and the
	// others go on. Any other failure (the database) commits none of them
	// and is returned. When it returns nil every put with a nil Err is
	// committed. Safe for concurrent use.
	PutSpecs(ctx context.Context, puts []SpecPut) ([]SpecPutResult, error)
}
