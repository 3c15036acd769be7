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

	db *db // the writer connection and the read pool, once open
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
	s.db = &db{w: w, r: r, names: s.DeliverNames}
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

// Close closes the database. Methods called after Close fail.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
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
