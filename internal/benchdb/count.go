package benchdb

import (
	"context"
	"sync/atomic"

	"github.com/certfleet/certfleet/sqlstore"
)

// Counter holds what a DB returned by Count has run. It is safe for
// concurrent use.
type Counter struct {
	writes, statements atomic.Int64
}

// Writes is the number of write transactions: calls of Write, and
// statements run through an Autocommitter's Querier (each its own
// transaction).
func (c *Counter) Writes() int64 { return c.writes.Load() }

// Statements is the number of statements run in those write
// transactions: Exec, Query, QueryRow and Queue. Reads outside Write are
// not counted.
func (c *Counter) Statements() int64 { return c.statements.Load() }

// Count wraps db so that its write transactions and their statements are
// counted in the returned Counter. The returned DB is a
// sqlstore.Autocommitter exactly when db is one (PostgreSQL), so a store
// attached to it takes the same paths as one attached to db.
func Count(db sqlstore.DB) (sqlstore.DB, *Counter) {
	d := &countingDB{DB: db, c: &Counter{}}
	if _, ok := db.(sqlstore.Autocommitter); ok {
		return countingAutoDB{d}, d.c
	}
	return d, d.c
}

type countingDB struct {
	sqlstore.DB
	c *Counter
}

func (d *countingDB) Write(ctx context.Context, fn func(tx sqlstore.Tx) error) error {
	d.c.writes.Add(1)
	return d.DB.Write(ctx, func(tx sqlstore.Tx) error { return fn(&countingTx{Tx: tx, n: &d.c.statements}) })
}

// countingAutoDB is a countingDB over a sqlstore.Autocommitter: each
// statement run on its own counts as a write transaction of one statement
// (ClaimDue).
type countingAutoDB struct{ *countingDB }

func (d countingAutoDB) Autocommit(ctx context.Context) sqlstore.Querier {
	return &countingAutocommit{Querier: d.DB.(sqlstore.Autocommitter).Autocommit(ctx), c: d.c}
}

type countingTx struct {
	sqlstore.Tx
	n *atomic.Int64
}

func (t *countingTx) Exec(q sqlstore.Q, args ...any) (int64, error) {
	t.n.Add(1)
	return t.Tx.Exec(q, args...)
}
func (t *countingTx) Query(q sqlstore.Q, args ...any) (sqlstore.Rows, error) {
	t.n.Add(1)
	return t.Tx.Query(q, args...)
}
func (t *countingTx) QueryRow(q sqlstore.Q, args ...any) sqlstore.Row {
	t.n.Add(1)
	return t.Tx.QueryRow(q, args...)
}
func (t *countingTx) Queue(q sqlstore.Q, args ...any) {
	t.n.Add(1)
	t.Tx.Queue(q, args...)
}

type countingAutocommit struct {
	sqlstore.Querier
	c *Counter
}

func (a *countingAutocommit) count() { a.c.writes.Add(1); a.c.statements.Add(1) }
func (a *countingAutocommit) Exec(q sqlstore.Q, args ...any) (int64, error) {
	a.count()
	return a.Querier.Exec(q, args...)
}
func (a *countingAutocommit) Query(q sqlstore.Q, args ...any) (sqlstore.Rows, error) {
	a.count()
	return a.Querier.Query(q, args...)
}
func (a *countingAutocommit) QueryRow(q sqlstore.Q, args ...any) sqlstore.Row {
	a.count()
	return a.Querier.QueryRow(q, args...)
}
