// Package postgres implements certfleet.Store on PostgreSQL (11 or newer),
// with github.com/jackc/pgx/v5. It is the store for several certfleet
// instances sharing one database: leases on jobs are claimed with
// SELECT … FOR UPDATE SKIP LOCKED and fenced, so no two instances ever work
// on the same certificate at once, and an instance that died loses its
// leases when they expire.
//
// The DSN is a PostgreSQL URL or key=value string as libpq and pgx accept
// it (postgres://user:pass@host:5432/db?sslmode=verify-full). Besides the
// usual connection parameters it takes pgxpool's pool settings
// (pool_max_conns, pool_min_conns, pool_max_conn_lifetime,
// pool_max_conn_idle_time, pool_health_check_period) and any server setting
// as a startup parameter, e.g. statement_timeout=10s or search_path=certfleet.
// Unless the DSN says otherwise, statements time out after
// DefaultStatementTimeout, connecting after DefaultConnectTimeout, and
// connections carry application_name=certfleet.
//
// Besides certfleet.Store it keeps what the HTTP API needs: tokens and the
// append-only log of private key reads (certfleet.TokenStore), and specs
// declared one at a time (certfleet.SpecWriter).
//
// Every change is one transaction. Changes to jobs and certificates send a
// NOTIFY in the same transaction; Store.Changes (certfleet.Notifier) turns
// them into wake-ups on every instance.
//
// The schema is created and upgraded by versioned migrations embedded in the
// binary (migrations/*.sql), applied under a transaction-scoped advisory lock
// so that instances starting at once do not race. A schema written by a newer
// certfleet is refused rather than guessed at.
//
// With a master key (Store.KEK) private keys are encrypted at rest: every
// key read and write goes through sealKey/openKey. For a single instance without a database server, use package sqlite.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/sqlstore"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	_ certfleet.Store      = (*Store)(nil)
	_ certfleet.Notifier   = (*Store)(nil)
	_ certfleet.SpecWriter = (*Store)(nil)
	_ certfleet.StatsStore = (*Store)(nil)
	_ certfleet.FleetStore = (*Store)(nil)
)

// Defaults applied when the DSN does not set them, with their reasons.
const (
	// DefaultStatementTimeout bounds every statement on the server
	// (statement_timeout), so a lock held by a stuck instance or a wedged
	// server turns into an error the scheduler retries instead of a hang.
	// certfleet's statements take milliseconds.
	DefaultStatementTimeout = "30s"
	// DefaultConnectTimeout bounds connection set-up (connect_timeout), so
	// an unreachable server fails fast with a clear error.
	DefaultConnectTimeout = 10 * time.Second
)

// Store is a certfleet.Store on a PostgreSQL database: the store logic of
// package sqlstore over this database. Create it with New (or Open), set
// its fields (those of sqlstore.Store too: Now, Logger, KEK, ...), then
// call Open. It is safe for concurrent use once open; its fields must not
// change after Open.
type Store struct {
	sqlstore.Store

	// DSN is the connection string (see the package documentation).
	DSN string

	pool    *pgxpool.Pool
	schema  string // current_schema() of the pool's connections
	channel string // the NOTIFY channel

	mu      sync.Mutex                 // guards subs, csubs, lctx
	subs    map[chan struct{}]struct{} // Changes
	csubs   map[chan struct{}]struct{} // ChallengeChanges
	cwatch  challengeWatchers          // WatchChallenges
	lctx    context.Context            // the listener's context; nil while none runs
	lcancel context.CancelFunc
	lwg     sync.WaitGroup
}

// New returns a Store for dsn; call Open before use.
func New(dsn string) *Store { return &Store{DSN: dsn} }

// Open connects to the database at dsn and migrates it, with default
// settings. It is New(dsn) followed by Store.Open.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := New(dsn)
	if err := s.Open(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseDSN parses dsn as Open does and applies the defaults, so callers can
// check a DSN and name its server (see Server) without connecting.
func ParseDSN(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors redact the password.
		return nil, certfleet.Errorf(certfleet.EINVALID, "postgres: bad DSN: %v", err)
	}
	cc := cfg.ConnConfig
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	if _, ok := cc.RuntimeParams["statement_timeout"]; !ok {
		cc.RuntimeParams["statement_timeout"] = DefaultStatementTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "certfleet"
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	return cfg, nil
}

// Server names the server of a parsed DSN for messages: host:port, the
// database and the user, never the password.
func Server(cfg *pgxpool.Config) string {
	cc := cfg.ConnConfig
	host := cc.Host
	if len(host) > 0 && host[0] == '/' {
		host = fmt.Sprintf("%s/.s.PGSQL.%d", host, cc.Port) // a Unix socket
	} else {
		host = net.JoinHostPort(host, strconv.Itoa(int(cc.Port)))
	}
	return fmt.Sprintf("%s (database %q, user %q)", host, cc.Database, cc.User)
}

// Open connects, applies pending migrations and checks that the schema is
// not newer than this code knows. On error nothing stays open. A server that
// cannot be reached is an EUNAVAILABLE error naming host and port.
func (s *Store) Open(ctx context.Context) error {
	if s.DSN == "" {
		return certfleet.Errorf(certfleet.EINVALID, "postgres: DSN required")
	}
	cfg, err := ParseDSN(s.DSN)
	if err != nil {
		return err
	}
	server := Server(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", server, translate(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("connect to postgres %s: %w", server, translate(err))
	}
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&s.schema); err != nil {
		pool.Close()
		return fmt.Errorf("postgres %s: read current schema (is search_path valid?): %w", server, translate(err))
	}
	s.channel = notifyChannel
	s.pool = pool
	if _, err := s.migrate(ctx); err != nil {
		s.pool = nil
		pool.Close()
		return fmt.Errorf("migrate postgres %s: %w", server, err)
	}
	if err := s.Attach(ctx, &db{pool: pool, channel: s.channel, schema: s.schema}); err != nil {
		s.pool = nil
		pool.Close()
		return fmt.Errorf("postgres %s: %w", server, err)
	}
	return nil
}

// Close stops the notification listener and closes the pool. Methods called
// after Close fail.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.lcancel != nil {
		s.lcancel()
	}
	s.mu.Unlock()
	s.lwg.Wait()
	if s.pool != nil {
		s.pool.Close()
	}
	return nil
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

var errNotOpen = errors.New("postgres: store is not open")

// SQLSTATE codes we act on (PostgreSQL Appendix A).
const (
	sqlUniqueViolation     = "23505"
	sqlForeignKeyViolation = "23503"
	sqlSerializationFail   = "40001"
	sqlDeadlock            = "40P01"
	sqlQueryCanceled       = "57014" // statement_timeout, or a cancel request
	sqlLockNotAvailable    = "55P03"
	sqlTooManyConnections  = "53300"
	sqlCannotConnectNow    = "57P03"
	sqlAdminShutdown       = "57P01"
	sqlCrashShutdown       = "57P02"
)

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == sqlDeadlock || pe.Code == sqlSerializationFail)
}

// translate attaches a certfleet code to driver errors that have one, by
// SQLSTATE (never by text), and marks connection failures EUNAVAILABLE. The
// driver error stays in the chain. Errors that already carry a code pass
// through.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var ce *certfleet.Error
	if errors.As(err, &ce) {
		return err
	}
	var code string
	var pe *pgconn.PgError
	var conn *pgconn.ConnectError
	switch {
	case errors.As(err, &pe):
		switch {
		case pe.Code == sqlUniqueViolation:
			code = certfleet.ECONFLICT
		case pe.Code == sqlForeignKeyViolation:
			code = certfleet.EINVALID
		case pe.Code == sqlSerializationFail, pe.Code == sqlDeadlock, pe.Code == sqlQueryCanceled,
			pe.Code == sqlLockNotAvailable, pe.Code == sqlTooManyConnections, pe.Code == sqlCannotConnectNow,
			pe.Code == sqlAdminShutdown, pe.Code == sqlCrashShutdown,
			len(pe.Code) == 5 && pe.Code[:2] == "08": // connection exceptions
			code = certfleet.EUNAVAILABLE
		default:
			return err
		}
		return fmt.Errorf("%w: %w", certfleet.Errorf(code, "database: SQLSTATE %s", pe.Code), err)
	case errors.As(err, &conn), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return fmt.Errorf("%w: %w", certfleet.Errorf(certfleet.EUNAVAILABLE, "database unreachable"), err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return fmt.Errorf("%w: %w", certfleet.Errorf(certfleet.EUNAVAILABLE, "database unreachable"), err)
	}
	// The connection closed in the middle of a reply (the server or the
	// path to it went away as it answered): pgx returns the read's bare
	// io.ErrUnexpectedEOF (issue 16: a database restart made jobs fail
	// and back off instead of retrying).
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", certfleet.Errorf(certfleet.EUNAVAILABLE, "database connection lost"), err)
	}
	return err
}
