// Package sqlite implements certfleet.Store on an embedded SQLite database,
// with the pure-Go driver modernc.org/sqlite (no cgo). It is the default
// store: one certfleet instance, one database file.
//
// The database runs in WAL mode with foreign keys on. Writes go through a
// single connection, each in a BEGIN IMMEDIATE transaction, so writers queue
// in the process instead of failing with SQLITE_BUSY; reads use a separate
// pool of read-only connections and never wait for writers. Every multi-row
// change is one transaction, so a crash (kill -9, power loss with FullSync)
// at any point leaves either the old state or the new one.
//
// The schema is created and upgraded by versioned migrations embedded in the
// binary (migrations/*.sql), recorded in the schema_migrations table. A
// database written by a newer certfleet is refused rather than guessed at.
//
// It deliberately does not share a database between instances: several
// instances on one database need PostgreSQL (package postgres), where leases
// are fenced across machines. With a master key (Store.KEK) private keys are
// encrypted at rest: every key read and write goes through sealKey/openKey.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	_ certfleet.Store      = (*Store)(nil)
	_ certfleet.SpecWriter = (*Store)(nil)
	_ certfleet.StatsStore = (*Store)(nil)
	_ certfleet.FleetStore = (*Store)(nil)
)

// busyTimeout is how long a connection waits for another process's lock
// (e.g. a CLI writing while the daemon runs) before SQLITE_BUSY. Within one
// process writers never contend: they share one connection.
const busyTimeout = 10 * time.Second

// Store is a certfleet.Store on one SQLite database file: the store logic
// of package sqlstore over this file. Create it with New (or Open), set its
// fields (those of sqlstore.Store too: Now, Logger, KEK, ...), then call
// Open. It is safe for concurrent use once open; its fields must not change
// after Open.
type Store struct {
	sqlstore.Store

	// Path is the database file, created if missing. It must be a file
	// path (":memory:" is not supported: the read pool and the writer are
	// separate connections and must see the same database).
	Path string

	// FullSync makes every commit wait for the WAL to reach the disk
	// (PRAGMA synchronous=FULL), so a committed change also survives a
	// power loss or OS crash. The default (false) is synchronous=NORMAL:
	// in WAL mode a commit is then written to the operating system before
	// it returns, so it survives the process being killed (kill -9, a
	// panic, an OOM kill) — the failure certfleet must tolerate — and only
	// an OS crash or power loss can lose the last commits; the database
	// stays consistent either way. NORMAL saves an fsync per write, which
	// matters when thousands of certificates are issued in a burst.
	FullSync bool

	db *db

	w *sql.DB // writer: one connection, BEGIN IMMEDIATE transactions
	r *sql.DB // readers: read-only pool

	prepared map[string]*sql.Stmt // hotWrites, prepared on w
}

// New returns a Store for the database file at path; call Open before use.
func New(path string) *Store {
	return &Store{Path: path}
}

// Open opens (creating if needed) and migrates the database at path with
// default settings. It is New(path) followed by Store.Open.
func Open(ctx context.Context, path string) (*Store, error) {
	s := New(path)
	if err := s.Open(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens the database file, applies pending migrations and checks that
// the schema is not newer than this code knows. On error nothing stays open.
func (s *Store) Open(ctx context.Context) error {
	if s.Path == "" {
		return certfleet.Errorf(certfleet.EINVALID, "sqlite: database path required")
	}
	if s.Path == ":memory:" || strings.ContainsAny(s.Path, "?") {
		return certfleet.Errorf(certfleet.EINVALID, "sqlite: database path %q: must be a file path without '?'", s.Path)
	}
	// The file holds private keys: create it readable by us only. SQLite
	// gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(s.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.Path, err)
	}
	f.Close()
	sync := "NORMAL"
	if s.FullSync {
		sync = "FULL"
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(%s)",
		busyTimeout.Milliseconds(), sync)

	w, err := sql.Open("sqlite", s.Path+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("open %s: %w", s.Path, err)
	}
	// One writer connection: database/sql queues writers in the process,
	// so they never meet SQLITE_BUSY from each other.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Open the writer first: it switches the file to WAL mode (persistent)
	// before any reader connects.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return fmt.Errorf("open %s: %w", s.Path, translate(err))
	}
	if err := s.migrate(ctx, w); err != nil {
		w.Close()
		return fmt.Errorf("migrate %s: %w", s.Path, err)
	}

	r, err := sql.Open("sqlite", s.Path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return fmt.Errorf("open %s: %w", s.Path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return fmt.Errorf("open %s: %w", s.Path, translate(err))
	}
	s.w, s.r = w, r
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return fmt.Errorf("open %s: %w", s.Path, err)
	}
	s.db = &db{w: w, r: r}
	if err := s.db.prepare(ctx, sqlstore.HotStatements()); err != nil {
		s.Close()
		return fmt.Errorf("open %s: %w", s.Path, err)
	}
	if err := s.Attach(ctx, s.db); err != nil {
		s.Close()
		return fmt.Errorf("open %s: %w", s.Path, err)
	}
	return nil
}

func (s *Store) prepare(ctx context.Context) error {
	s.prepared = make(map[string]*sql.Stmt, len(hotWrites))
	for _, q := range hotWrites {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, translate(err))
		}
		s.prepared[q] = st
	}
	return nil
}

// Close closes the database. Methods called after Close fail.
func (s *Store) Close() error {
	var errs []error
	for _, st := range s.prepared {
		errs = append(errs, st.Close())
	}
	if s.db == nil {
		s.db = &db{w: s.w, r: s.r}
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the writer
// connection) and commits it when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *txn) error) error {
	if s.w == nil {
		return errNotOpen
	}
	sqltx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	tx := &txn{ctx: ctx, tx: sqltx, s: s}
	if err := fn(tx); err != nil {
		_ = sqltx.Rollback()
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return translate(err)
	}
	return nil
}

// txn is a write transaction that runs the statements prepared at Open
// (see hotWrites) without compiling them again: SQL compilation was a third
// of the CPU time of CompleteIssuance.
type txn struct {
	ctx   context.Context
	tx    *sql.Tx
	s     *Store
	stmts map[string]*sql.Stmt // tx-bound forms of s.prepared, made on first use
}

func (t *txn) stmt(query string) *sql.Stmt {
	if st, ok := t.stmts[query]; ok {
		return st
	}
	p, ok := t.s.prepared[query]
	if !ok {
		return nil
	}
	st := t.tx.StmtContext(t.ctx, p)
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[query] = st
	return st
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
}

func (t *txn) queryRow(query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

// hotWrites are the statements of the write path that run once or more
// per certificate; Open prepares them once on the writer connection.
var hotWrites = []string{}

// reader returns the read pool.
func (s *Store) reader() (*sql.DB, error) {
	if s.r == nil {
		return nil, errNotOpen
	}
	return s.r, nil
}

var errNotOpen = errors.New("sqlite: store is not open")

// scanner is a row or rows being read (the store code not yet in sqlstore).
type scanner interface{ Scan(dest ...any) error }

// translate attaches a certfleet code to driver errors that have one, by
// result code (never by text). The driver error stays in the chain.
func translate(err error) error {
	if err == nil {
		return nil // without a heap-allocated errors.As target: this is on every statement's path
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	var code string
	switch c := se.Code(); {
	case c == sqlite3.SQLITE_CONSTRAINT_UNIQUE, c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		code = certfleet.ECONFLICT
	case c == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		code = certfleet.EINVALID
	case c&0xff == sqlite3.SQLITE_BUSY, c&0xff == sqlite3.SQLITE_LOCKED:
		code = certfleet.EUNAVAILABLE
	default:
		return err
	}
	return fmt.Errorf("%w: %w", certfleet.Errorf(code, "database: %s", sqlite.ErrorCodeString[se.Code()&0xff]), err)
}

// ts encodes a time as Unix microseconds, NULL for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// tsReq encodes a time that must not be NULL.
func tsReq(t time.Time) int64 { return t.UnixMicro() }

// fromTS decodes a time stored by ts, in UTC.
func fromTS(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
