// Package pgsource is the inventory source of a PostgreSQL table or view
// the operator owns: it runs a configured query in a read-only
// transaction, one row per certificate with columns named after the
// certificate keys (config.InventoryRowKeys), and LISTENs on a channel
// that a trigger on the table notifies (TriggerSQL; trigger.sql is the
// file to install), so that a change is read within moments of its
// commit. The reconciler's schedule re-reads it anyway, in case a
// notification was lost.
//
// It does not decode the rows into certificates (package inventory does,
// with the config file's own rules) and has nothing to do with certfleet's
// own store (package postgres), though both may live in one database.
package pgsource

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/inventory"
)

// DefaultReadTimeout bounds one read (connect, query, rows): a hung
// database must not hold the reconciler for ever.
const DefaultReadTimeout = 2 * time.Minute

// connectTimeout bounds Watch's connecting: a server that drops packets
// must not keep it waiting for ever.
const connectTimeout = 30 * time.Second

// idColumn is the one column that is not a certificate key: it names the
// row in problems ("row id=17").
const idColumn = "id"

// listKeys take a list; a source may give one value as a plain string.
var listKeys = []string{"identifiers", "key_types"}

// Source reads certificates from a query. Set the fields before first use.
type Source struct {
	// DSN is the database's postgres:// URL. Required.
	DSN string
	// Password, when set, overrides the DSN's.
	Password string
	// Query returns one row per certificate. Required.
	Query string
	// Channel is LISTENed to by Watch; "" watches nothing.
	Channel string
	// ReadTimeout: see DefaultReadTimeout.
	ReadTimeout time.Duration
}

var (
	_ inventory.Source  = (*Source)(nil)
	_ inventory.Watcher = (*Source)(nil)
)

//go:embed trigger.sql
var triggerSQL string

// TriggerSQL returns the SQL that installs the notifying trigger on table
// for channel: trigger.sql, with its example table and channel replaced.
// table may be schema-qualified ("hosting.customer_domains").
func TriggerSQL(table, channel string) string {
	parts := strings.Split(table, ".")
	quoted := pgx.Identifier(parts).Sanitize()
	s := strings.ReplaceAll(triggerSQL, "ON customer_domains", "ON "+quoted)
	return strings.ReplaceAll(s, "('certfleet_inventory')", "('"+strings.ReplaceAll(channel, "'", "''")+"')")
}

func (s *Source) connConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(s.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %v; write postgres://USER@HOST:PORT/DATABASE", redact(err))
	}
	if s.Password != "" {
		cc.Password = s.Password
	}
	return cc, nil
}

// redact drops what a DSN parse error may quote (the password).
func redact(err error) string {
	if strings.Contains(err.Error(), "@") {
		return "cannot parse the URL"
	}
	return err.Error()
}

func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s on %s: %w; check that it runs and that the source's dsn and password are right", cc.Database, cc.Host, err)
	}
	return conn, nil
}

// Read implements inventory.Source: the query's rows, in a read-only
// transaction, each an Entry whose Fields are its non-NULL columns.
func (s *Source) Read(ctx context.Context) ([]inventory.Entry, error) {
	timeout := s.ReadTimeout
	if timeout <= 0 {
		timeout = DefaultReadTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, s.Query)
	if err != nil {
		return nil, fmt.Errorf("run the source's query: %w; check it with psql (it runs in a read-only transaction)", err)
	}
	defer rows.Close()
	cols := make([]string, len(rows.FieldDescriptions()))
	for i, fd := range rows.FieldDescriptions() {
		cols[i] = fd.Name
		if fd.Name != idColumn && !slices.Contains(config.InventoryRowKeys, fd.Name) {
			return nil, fmt.Errorf("the query returns a column %q, which is not a certificate key; name its columns %s (and optionally %s, to name rows in problems), as in SELECT domain AS name",
				fd.Name, strings.Join(config.InventoryRowKeys, ", "), idColumn)
		}
	}
	var entries []inventory.Entry
	for n := 1; rows.Next(); n++ {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("read row %d of the source's query: %w", n, err)
		}
		where := fmt.Sprintf("row %d", n)
		fields := make(map[string]any, len(cols))
		for i, v := range vals {
			if v == nil {
				continue // NULL: the key is not set (a default applies)
			}
			if cols[i] == idColumn {
				where = fmt.Sprintf("row id=%v", v)
				continue
			}
			fields[cols[i]] = value(cols[i], v)
		}
		entries = append(entries, inventory.Entry{Where: where, Fields: fields})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the source's query: %w", err)
	}
	return entries, nil
}

// value maps a column's value onto the TOML-like values the config's
// decoder takes: text, arrays of text, booleans. Others pass through, for
// the decoder to refuse with the key's name.
func value(key string, v any) any {
	switch x := v.(type) {
	case string:
		if slices.Contains(listKeys, key) {
			return []any{x}
		}
		return x
	case []any:
		return x
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case pgtype.Interval:
		// renew_before or renew_after as an interval: days and
		// microseconds are exact; months are not a fixed length.
		if x.Valid && x.Months == 0 && x.Microseconds >= 0 && x.Days >= 0 {
			return (time.Duration(x.Days)*24*time.Hour + time.Duration(x.Microseconds)*time.Microsecond).String()
		}
	}
	return v
}

// Watch implements inventory.Watcher: it LISTENs on Channel on a
// connection of its own and calls changed at each notification. It
// returns nil at once when Channel is "".
func (s *Source) Watch(ctx context.Context, changed func()) error {
	if s.Channel == "" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	conn, err := s.connect(cctx)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN %s: %w", s.Channel, err)
	}
	changed() // what changed before we listened
	for {
		// Wake now and then to check that the connection is alive: a
		// dead one would otherwise wait for ever.
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			changed()
		case wctx.Err() != nil && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("LISTEN %s: connection lost: %w", s.Channel, err)
			}
		default:
			return fmt.Errorf("LISTEN %s: connection lost: %w", s.Channel, err)
		}
	}
}
