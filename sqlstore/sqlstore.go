// Package sqlstore is certfleet.Store written once, over the SQL that
// SQLite and PostgreSQL share: every store feature's logic, its queries,
// its row mapping and its checks live here, above a small seam (DB) that a
// database driver implements.
//
// It does not open databases, run migrations, translate driver errors,
// batch statements or deliver notifications between instances: that is
// what each driver does differently, and it lives in package sqlite (an
// embedded database file, one instance) and package postgres (several
// instances on one database). Use those; this package has no database of
// its own.
//
// A statement is a Q: written once in the SQL both dialects accept, or in
// each dialect's form where they differ (see Q): row locking (FOR UPDATE
// SKIP LOCKED on PostgreSQL, where SQLite has one writer), advisory locks,
// casts, and the predicates of SQLite's partial indexes. Private keys
// enter and leave the database only through sealKey and openKey.
package sqlstore

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/seal"
)

// Store is the logic of certfleet.Store over a DB. A driver embeds it, sets
// its fields, and calls Attach once its database is open and migrated.
// Its fields must not change after Attach; it is safe for concurrent use.
type Store struct {
	// Now returns the current time. It dates new jobs (due at once),
	// RetryNow, and records that the caller left undated. Default
	// time.Now. Instances sharing a database should have synchronised
	// clocks: lease expiry compares one instance's time with another's.
	Now func() time.Time

	// Logger receives the store's events (schema migrations, the
	// notification connection). Nil discards.
	Logger *slog.Logger

	// KEK is the master key that wraps the store's data key; every
	// private key is then sealed under the data key (package seal). Nil
	// stores keys unencrypted, which Attach allows only while the store
	// holds no data key (docs/keys-at-rest.md).
	KEK seal.KeyWrapper
	// PreviousKEKs are older master keys, accepted to unwrap the data key
	// during a rotation.
	PreviousKEKs []seal.KeyWrapper
	// MasterKeyHint says where the master key is expected ("file:
	// /etc/certfleet/master.key, env: CERTFLEET_MASTER_KEY"), for the
	// error of a store with sealed keys opened without one.
	MasterKeyHint string

	db      DB
	dialect Dialect
	sealer  *seal.Sealer // nil without KEK
	keys    seal.Keyring // sealKey/openKey policy, set by Attach

	watchers nameWatchers // WatchNames
}

var _ certfleet.Store = (*Store)(nil)

// Attach makes s use db, which must be open and migrated, and opens its
// sealer: with a master key it unwraps the data key (creating it in an
// empty store); without one it checks that the store holds no data key, so
// a store that may hold sealed values is never used without its master key.
func (s *Store) Attach(ctx context.Context, db DB) error {
	s.db, s.dialect = db, db.Dialect()
	keys, err := seal.OpenKeyring(ctx, s, s.KEK, s.PreviousKEKs, s.MasterKeyHint)
	if err != nil {
		s.db = nil
		return err
	}
	s.keys, s.sealer = keys, keys.Sealer
	return nil
}

// DB returns the database s was attached to (nil before Attach).
func (s *Store) DB() DB { return s.db }

// Close closes the database. Methods called after Close fail.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// Sealer returns the store's Sealer (to rotate its master key), or nil when
// the store was opened without a master key.
func (s *Store) Sealer() *seal.Sealer { return s.sealer }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var errNotOpen = certfleet.Errorf(certfleet.EUNAVAILABLE, "store is not open")

// read returns a Querier outside any transaction.
func (s *Store) read(ctx context.Context) (Querier, error) {
	if s.db == nil {
		return nil, errNotOpen
	}
	return s.db.Read(ctx), nil
}

// write runs fn in one write transaction (see DB.Write).
func (s *Store) write(ctx context.Context, fn func(tx Tx) error) error {
	if s.db == nil {
		return errNotOpen
	}
	return s.db.Write(ctx, fn)
}

// noRows reports whether err is a QueryRow that found nothing.
func noRows(err error) bool { return errors.Is(err, ErrNoRows) }
