package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
)

// db is the sqlstore.DB of a SQLite file: one writer connection whose
// transactions are BEGIN IMMEDIATE, so writers queue in the process instead
// of failing with SQLITE_BUSY, and a pool of read-only connections that
// never wait for writers. Hot statements are prepared once per pool on
// first use.
//
// Times are stored as INTEGER Unix microseconds (UTC), NULL for none;
// booleans as INTEGER 0/1 (the driver binds Go bools so).
type db struct {
	w, r *sql.DB

	// prepared and rprepared hold sqlstore's hot statements, prepared by
	// prepare at open on the writer and on the read pool; read-only
	// afterwards. (They cannot be prepared on first use: a write
	// transaction holds the only writer connection.)
	prepared  map[string]*sql.Stmt
	rprepared map[string]*sql.Stmt

	// names receives, after each commit, the names its NotifyNames
	// gave (sqlstore.Store.DeliverNames); nil ignores them.
	names func([]string)
}

var _ sqlstore.DB = (*db)(nil)

func (d *db) Dialect() sqlstore.Dialect { return sqlstore.SQLite }

// prepare prepares qs on the writer and on the read pool.
func (d *db) prepare(ctx context.Context, qs []sqlstore.Q) error {
	d.prepared = make(map[string]*sql.Stmt, len(qs))
	d.rprepared = make(map[string]*sql.Stmt, len(qs))
	for _, q := range qs {
		text := q.Text(sqlstore.SQLite)
		for _, p := range []struct {
			pool *sql.DB
			m    map[string]*sql.Stmt
		}{{d.w, d.prepared}, {d.r, d.rprepared}} {
			st, err := p.pool.PrepareContext(ctx, text)
			if err != nil {
				return fmt.Errorf("prepare %q: %w", text, translate(err))
			}
			p.m[text] = st
		}
	}
	return nil
}

// stmt returns the prepared form of a hot statement, or nil.
func (d *db) stmt(q sqlstore.Q, reader bool) *sql.Stmt {
	if reader {
		return d.rprepared[q.Text(sqlstore.SQLite)]
	}
	return d.prepared[q.Text(sqlstore.SQLite)]
}

func (d *db) Read(ctx context.Context) sqlstore.Querier {
	return &querier{ctx: ctx, d: d, pool: d.r, reader: true}
}

func (d *db) View(ctx context.Context, fn func(sqlstore.Querier) error) error {
	tx, err := d.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback()
	return fn(&querier{ctx: ctx, d: d, tx: tx, reader: true})
}

func (d *db) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	sqltx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	tx := &dbTx{querier: querier{ctx: ctx, d: d, tx: sqltx}}
	if err := fn(tx); err != nil {
		_ = sqltx.Rollback()
		return err
	}
	if tx.queued != nil {
		err := tx.queued
		_ = sqltx.Rollback()
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return translate(err)
	}
	if tx.notify && d.names != nil {
		d.names(tx.names)
	}
	return nil
}

func (d *db) Close() error {
	var errs []error
	for _, st := range d.prepared {
		errs = append(errs, st.Close())
	}
	for _, st := range d.rprepared {
		errs = append(errs, st.Close())
	}
	if d.r != nil {
		errs = append(errs, d.r.Close())
	}
	if d.w != nil {
		// Checkpoint on the way out, so the WAL file does not linger at
		// its largest. A failure here loses nothing: the WAL is replayed
		// on the next open.
		_, _ = d.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		errs = append(errs, d.w.Close())
	}
	return errors.Join(errs...)
}

// querier runs statements on the read pool, in a read transaction, or in
// a write transaction.
type querier struct {
	ctx    context.Context
	d      *db
	pool   *sql.DB // when outside a transaction
	tx     *sql.Tx // when inside one
	reader bool

	// bound holds the tx-bound forms of the prepared statements used in
	// tx so far: binding one per call would keep a statement per call
	// until the transaction ends (SyncSpecs inserts thousands of jobs).
	bound map[*sql.Stmt]*sql.Stmt
}

func (q *querier) prep(s sqlstore.Q) *sql.Stmt {
	st := q.d.stmt(s, q.reader)
	if st == nil || q.tx == nil {
		return st
	}
	if b, ok := q.bound[st]; ok {
		return b
	}
	b := q.tx.StmtContext(q.ctx, st)
	if q.bound == nil {
		q.bound = make(map[*sql.Stmt]*sql.Stmt)
	}
	q.bound[st] = b
	return b
}

func (q *querier) Exec(s sqlstore.Q, args ...any) (int64, error) {
	text := s.Text(sqlstore.SQLite)
	if text == "" {
		return 0, nil
	}
	args = encodeArgs(args)
	var (
		res sql.Result
		err error
	)
	if st := q.prep(s); st != nil {
		res, err = st.ExecContext(q.ctx, args...)
	} else if q.tx != nil {
		res, err = q.tx.ExecContext(q.ctx, text, args...)
	} else {
		res, err = q.pool.ExecContext(q.ctx, text, args...)
	}
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	return n, translate(err)
}

func (q *querier) Query(s sqlstore.Q, args ...any) (sqlstore.Rows, error) {
	text := s.Text(sqlstore.SQLite)
	args = encodeArgs(args)
	var (
		rs  *sql.Rows
		err error
	)
	if st := q.prep(s); st != nil {
		rs, err = st.QueryContext(q.ctx, args...)
	} else if q.tx != nil {
		rs, err = q.tx.QueryContext(q.ctx, text, args...)
	} else {
		rs, err = q.pool.QueryContext(q.ctx, text, args...)
	}
	if err != nil {
		return nil, translate(err)
	}
	return &rows{rs: rs}, nil
}

func (q *querier) QueryRow(s sqlstore.Q, args ...any) sqlstore.Row {
	rs, err := q.Query(s, args...)
	return sqlstore.FirstRow(rs, err)
}

// txn is a write transaction.
type dbTx struct {
	querier
	queued error    // the first error of a queued statement
	notify bool     // NotifyNames was called
	names  []string // what it gave; nil with notify: all
}

func (t *dbTx) Queue(s sqlstore.Q, args ...any) {
	if t.queued != nil {
		return
	}
	if _, err := t.querier.Exec(s, args...); err != nil {
		t.queued = err
	}
}

func (t *dbTx) Exec(s sqlstore.Q, args ...any) (int64, error) {
	if t.queued != nil {
		return 0, t.queued
	}
	return t.querier.Exec(s, args...)
}

func (t *dbTx) Query(s sqlstore.Q, args ...any) (sqlstore.Rows, error) {
	if t.queued != nil {
		return nil, t.queued
	}
	return t.querier.Query(s, args...)
}

func (t *dbTx) QueryRow(s sqlstore.Q, args ...any) sqlstore.Row {
	if t.queued != nil {
		return sqlstore.FirstRow(nil, t.queued)
	}
	return t.querier.QueryRow(s, args...)
}

// Notify does nothing: no other instance shares a SQLite file, and this
// process learns of its own changes in-process (certfleet.Changes).
func (t *dbTx) Notify() error { return nil }

// NotifyNames keeps names for this process's watchers, told after commit:
// no other instance shares a SQLite file.
func (t *dbTx) NotifyNames(names []string) error {
	if t.notify && t.names == nil {
		return nil // already all
	}
	if names == nil {
		t.names = nil
	} else {
		t.names = append(t.names, names...)
	}
	t.notify = true
	return nil
}

// NotifyChallenge does nothing, for the same reason as Notify.
func (t *dbTx) NotifyChallenge(certfleet.ChallengeToken) error { return nil }

// rows reads every *time.Time scan destination through unixMicro.
type rows struct {
	rs  *sql.Rows
	buf []any // Scan's destinations with the times wrapped, reused row after row
}

func (r *rows) Next() bool { return r.rs.Next() }
func (r *rows) Err() error { return translate(r.rs.Err()) }
func (r *rows) Close()     { r.rs.Close() }
func (r *rows) Scan(dest ...any) error {
	return translate(r.rs.Scan(sqlstore.ScanTimes(&r.buf, dest, scanUnixMicro)...))
}

func scanUnixMicro(t *time.Time) any { return unixMicro{t} }

// encodeArgs turns time.Time arguments into the stored form (Unix
// microseconds). It copies args only when one needs it.
func encodeArgs(args []any) []any {
	var out []any
	for i, a := range args {
		t, ok := a.(time.Time)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = t.UnixMicro()
	}
	if out == nil {
		return args
	}
	return out
}

// unixMicro scans a stored time (an integer of Unix microseconds, NULL for
// none) into *t, in UTC; NULL is the zero time. Being one pointer, it is
// held in an interface without an allocation: scanning a page of rows
// costs nothing per time column.
type unixMicro struct{ t *time.Time }

func (u unixMicro) Scan(src any) error {
	if v, ok := src.(int64); ok {
		*u.t = time.UnixMicro(v).UTC()
		return nil
	}
	var n sql.NullInt64
	if err := n.Scan(src); err != nil {
		return fmt.Errorf("read a time stored as %T: %w", src, err)
	}
	*u.t = time.Time{}
	if n.Valid {
		*u.t = time.UnixMicro(n.Int64).UTC()
	}
	return nil
}
