package sqlstore

import (
	"context"
	"errors"

	"github.com/certfleet/certfleet"
)

// Dialect names the SQL a database speaks.
type Dialect int

// The dialects certfleet's stores speak.
const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown dialect"
}

// Q is one SQL statement. Most are written once, in the SQL both databases
// accept: numbered placeholders ($1, $2, …; SQLite takes them as it takes
// ?NNN), ON CONFLICT upserts and RETURNING. Where the dialects differ
// (locking, casts, functions) a Q holds each form; a form that is empty
// means the statement has nothing to do in that dialect (an advisory lock
// on SQLite, whose write transactions already exclude each other), and
// running it does nothing.
//
// Arguments are Go values: time.Time is a point in time (a SQLite DB stores
// Unix microseconds, PostgreSQL a timestamptz); pass NullTime(t) where the
// zero time means NULL. A *time.Time scan destination reads either back, in
// UTC, and NULL as the zero time.
type Q struct {
	sqlite, postgres string
}

// SQL returns the statement written once for both dialects.
func SQL(text string) Q { return Q{sqlite: text, postgres: text} }

// SQLEach returns a statement written for each dialect.
func SQLEach(sqlite, postgres string) Q { return Q{sqlite: sqlite, postgres: postgres} }

// Text returns q in dialect d.
func (q Q) Text(d Dialect) string {
	if d == Postgres {
		return q.postgres
	}
	return q.sqlite
}

// DB is what a database driver (package sqlite, package postgres) gives the
// store: connections, transactions and the SQL that cannot be shared. Its
// methods return errors that carry a certfleet code where the driver error
// has one (ECONFLICT for a unique violation, EINVALID for a foreign key,
// EUNAVAILABLE for an unreachable or busy database), with the driver error
// still in the chain, and ErrNoRows for a QueryRow without a row.
type DB interface {
	// Dialect is the SQL the database speaks.
	Dialect() Dialect
	// Read returns a Querier for single statements outside any write
	// transaction (SQLite: the read-only pool, which never waits for
	// writers).
	Read(ctx context.Context) Querier
	// View runs fn in one read-only transaction: every statement in it
	// sees the same snapshot.
	View(ctx context.Context, fn func(q Querier) error) error
	// Write runs fn in one write transaction and commits it when fn
	// returns nil; any error rolls it back. fn may run more than once (a
	// transaction PostgreSQL aborted to break a deadlock is retried): it
	// must reset whatever it accumulates.
	Write(ctx context.Context, fn func(tx Tx) error) error
	// Close closes the database.
	Close() error
}

// Querier runs statements. It is bound to the context it was made with.
type Querier interface {
	// Exec runs q and returns the number of rows it changed.
	Exec(q Q, args ...any) (int64, error)
	// Query runs q and returns its rows; the caller closes them.
	Query(q Q, args ...any) (Rows, error)
	// QueryRow runs q for at most one row; its Scan returns ErrNoRows
	// when there is none.
	QueryRow(q Q, args ...any) Row
}

// Tx is a write transaction.
type Tx interface {
	Querier
	// Queue adds q to the transaction without waiting for it: queued
	// statements run in order before the next Exec, Query or QueryRow
	// and before commit, and the first error among them is returned
	// there. PostgreSQL sends them in one round trip; SQLite runs them at
	// once.
	Queue(q Q, args ...any)
	// Notify tells every instance sharing the database, once the
	// transaction commits, that jobs or certificates changed
	// (certfleet.Notifier). A database no other instance shares does
	// nothing.
	Notify() error
	// NotifyNames tells every instance sharing the database, this one
	// included, once the transaction commits, that the certificates of
	// names changed: the driver hands them to Store.DeliverNames there
	// (certfleet.NameWatcher). nil names means any may have.
	NotifyNames(names []string) error
	// NotifyChallenge hands t to the responders of every instance, once
	// the transaction commits (certfleet.ChallengeWatcher): a token put,
	// or with an empty KeyAuthorization one removed. It wakes no
	// scheduler. A database no other instance shares does nothing.
	NotifyChallenge(t certfleet.ChallengeToken) error
}

// Rows is the result of a query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// ErrNoRows is what Row.Scan returns when the query found no row.
var ErrNoRows = errors.New("sqlstore: no rows in result set")

// Autocommitter is a DB that can run a statement as a transaction of its
// own without opening one first (PostgreSQL: a statement sent on the pool
// commits when it completes, in one round trip where Write takes three).
// The store uses it for a write that is one statement whose outcome
// stands whatever the caller does next (ClaimDue); a DB without it runs
// such a statement in Write.
type Autocommitter interface {
	// Autocommit returns a Querier whose every statement is its own
	// transaction.
	Autocommit(ctx context.Context) Querier
}
