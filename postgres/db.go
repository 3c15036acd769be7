package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// db is the sqlstore.DB of a PostgreSQL database: a pgx pool (which keeps
// every statement prepared per connection), read-committed write
// transactions retried when the server aborts one to break a deadlock or a
// serialization conflict, queued statements sent as one batch, and NOTIFY
// at commit.
type db struct {
	pool    *pgxpool.Pool
	channel string // the NOTIFY channel
	schema  string // the payload: current_schema() of the pool's connections
}

var (
	_ sqlstore.DB            = (*db)(nil)
	_ sqlstore.Autocommitter = (*db)(nil)
)

func (d *db) Dialect() sqlstore.Dialect { return sqlstore.Postgres }

func (d *db) Read(ctx context.Context) sqlstore.Querier {
	return &querier{ctx: ctx, q: d.pool}
}

// Autocommit implements sqlstore.Autocommitter: statements on the pool
// commit on their own.
func (d *db) Autocommit(ctx context.Context) sqlstore.Querier {
	return &querier{ctx: ctx, q: d.pool}
}

func (d *db) View(ctx context.Context, fn func(sqlstore.Querier) error) error {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(&querier{ctx: ctx, q: tx})
}

// maxTxAttempts bounds the retries of a transaction that PostgreSQL aborted
// to break a deadlock or a serialization conflict: such an abort is not the
// caller's fault and a retry succeeds.
const maxTxAttempts = 3

func (d *db) Write(ctx context.Context, fn func(sqlstore.Tx) error) error {
	var err error
	for range maxTxAttempts {
		err = d.writeOnce(ctx, fn)
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (d *db) writeOnce(ctx context.Context, fn func(sqlstore.Tx) error) error {
	ptx, err := d.pool.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	tx := &dbTx{querier: querier{ctx: ctx, q: ptx}, tx: ptx, d: d}
	if err := fn(tx); err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.flush(); err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return translate(ptx.Commit(ctx))
}

func (d *db) Close() error {
	d.pool.Close()
	return nil
}

// pgxConn is what pgx's pool and its transactions share.
type pgxConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type querier struct {
	ctx context.Context
	q   pgxConn
}

func (q *querier) Exec(s sqlstore.Q, args ...any) (int64, error) {
	text := s.Text(sqlstore.Postgres)
	if text == "" {
		return 0, nil
	}
	tag, err := q.q.Exec(q.ctx, text, args...)
	if err != nil {
		return 0, translate(err)
	}
	return tag.RowsAffected(), nil
}

func (q *querier) Query(s sqlstore.Q, args ...any) (sqlstore.Rows, error) {
	rs, err := q.q.Query(q.ctx, s.Text(sqlstore.Postgres), args...)
	if err != nil {
		return nil, translate(err)
	}
	return &rows{rs: rs}, nil
}

func (q *querier) QueryRow(s sqlstore.Q, args ...any) sqlstore.Row {
	rs, err := q.Query(s, args...)
	return sqlstore.FirstRow(rs, err)
}

// dbTx is a write transaction; queued statements wait in batch.
type dbTx struct {
	querier
	tx    pgx.Tx
	d     *db
	batch *pgx.Batch
}

func (t *dbTx) Queue(s sqlstore.Q, args ...any) {
	text := s.Text(sqlstore.Postgres)
	if text == "" {
		return
	}
	if t.batch == nil {
		t.batch = &pgx.Batch{}
	}
	t.batch.Queue(text, args...)
}

// flush sends the queued statements, if any, in one round trip.
func (t *dbTx) flush() error {
	if t.batch == nil || t.batch.Len() == 0 {
		return nil
	}
	b := t.batch
	t.batch = nil
	return translate(t.tx.SendBatch(t.ctx, b).Close())
}

func (t *dbTx) Exec(s sqlstore.Q, args ...any) (int64, error) {
	if err := t.flush(); err != nil {
		return 0, err
	}
	return t.querier.Exec(s, args...)
}

func (t *dbTx) Query(s sqlstore.Q, args ...any) (sqlstore.Rows, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t.querier.Query(s, args...)
}

func (t *dbTx) QueryRow(s sqlstore.Q, args ...any) sqlstore.Row {
	if err := t.flush(); err != nil {
		return sqlstore.FirstRow(nil, err)
	}
	return t.querier.QueryRow(s, args...)
}

// Notify queues a change notification, delivered when the transaction
// commits (PostgreSQL folds identical notifications of one transaction
// into one); see Store.Changes.
func (t *dbTx) Notify() error {
	t.Queue(qNotify, t.d.channel, t.d.schema)
	return nil
}

// NotifyChallenge queues the notification of a challenge token's change,
// delivered at commit with the token itself (Store.WatchChallenges).
func (t *dbTx) NotifyChallenge(tok certfleet.ChallengeToken) error {
	payload, err := challengePayload(t.d.schema, tok)
	if err != nil {
		return err
	}
	t.Queue(qNotify, t.d.channel, payload)
	return nil
}

var qNotify = sqlstore.SQLEach("", `SELECT pg_notify($1, $2)`)

// NotifyNames queues notifications naming what changed, delivered at
// commit to every instance's listener (Store.WatchNames): the payload is
// the schema, a newline, and the names one a line ("*" for all), cut into
// notifications of at most maxNamesPayload bytes (PostgreSQL takes 8,000).
func (t *dbTx) NotifyNames(names []string) error {
	if names == nil {
		t.Queue(qNotify, t.d.channel, t.d.schema+"\n*")
		return nil
	}
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			t.Queue(qNotify, t.d.channel, t.d.schema+"\n"+b.String())
			b.Reset()
		}
	}
	for _, n := range names {
		if b.Len()+len(n)+1 > maxNamesPayload {
			flush()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(n)
	}
	flush()
	return nil
}

// maxNamesPayload bounds the names of one notification, below
// PostgreSQL's 8,000 bytes with room for the schema.
const maxNamesPayload = 7000

// rows reads every *time.Time scan destination through timestamptz.
type rows struct {
	rs  pgx.Rows
	buf []any // Scan's destinations with the times wrapped, reused row after row
}

func (r *rows) Next() bool { return r.rs.Next() }
func (r *rows) Err() error { return translate(r.rs.Err()) }
func (r *rows) Close()     { r.rs.Close() }
func (r *rows) Scan(dest ...any) error {
	return translate(r.rs.Scan(sqlstore.ScanTimes(&r.buf, dest, scanTimestamptz)...))
}

func scanTimestamptz(t *time.Time) any { return timestamptz{t} }

// timestamptz scans a nullable timestamptz into *t, in UTC; NULL is the
// zero time. Being one pointer, it is held in an interface without an
// allocation: scanning a page of rows costs nothing per time column.
type timestamptz struct{ t *time.Time }

// ScanTimestamptz implements pgtype.TimestamptzScanner.
func (p timestamptz) ScanTimestamptz(v pgtype.Timestamptz) error {
	*p.t = time.Time{}
	if v.Valid {
		*p.t = v.Time.UTC()
	}
	return nil
}
