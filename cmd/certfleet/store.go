package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/postgres"
	"github.com/certfleet/certfleet/sqlite"
)

// isPostgres reports whether the config's state names a PostgreSQL
// database (a postgres:// or postgresql:// URL) rather than a SQLite file.
func isPostgres(state string) bool {
	l := strings.ToLower(state)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// openStore opens (creating or migrating as needed) the store the config's
// state names: a PostgreSQL database for a postgres:// or postgresql://
// URL, else a SQLite file, whose directory is created (mode 0700). With a
// master key (mk, or CERTFLEET_MASTER_KEY) private keys are encrypted at
// rest; without one the store opens only if it holds no encrypted key, and
// a warning is logged.
func openStore(ctx context.Context, state string, log *slog.Logger, mk config.MasterKey) (certfleet.Store, error) {
	keys, err := loadMasterKeys(mk)
	if err != nil {
		return nil, err
	}
	return openStoreWith(ctx, state, log, keys)
}

// openStoreWith is openStore with the master keys loaded.
func openStoreWith(ctx context.Context, state string, log *slog.Logger, keys storeKeys) (certfleet.Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := openStoreKeys(ctx, state, log, keys)
	if err == nil && keys.kek == nil {
		log.Warn(noMasterKeyWarning)
	}
	return s, err
}

func openStoreKeys(ctx context.Context, state string, log *slog.Logger, keys storeKeys) (certfleet.Store, error) {
	if isPostgres(state) {
		return openPostgres(ctx, state, log, keys)
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory for %s: %w", state, err)
	}
	s := sqlite.New(state)
	s.Logger = log
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = keys.kek, keys.previous, keys.hint
	if err := s.Open(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", state, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string, log *slog.Logger, keys storeKeys) (*postgres.Store, error) {
	cfg, err := postgres.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", redactDSN(dsn), err)
	}
	s := postgres.New(dsn)
	s.Logger = log
	s.KEK, s.PreviousKEKs, s.MasterKeyHint = keys.kek, keys.previous, keys.hint
	if err := s.Open(ctx); err != nil {
		if certfleet.ErrorCode(err) == certfleet.EUNAVAILABLE {
			return nil, fmt.Errorf("%w\n"+
				"certfleet cannot reach its PostgreSQL database at %s: check that the server runs "+
				"(pg_isready -h %s -p %d), that it accepts connections from this host "+
				"(listen_addresses, pg_hba.conf, firewalls), and the host, port, user, password "+
				"and database of the state URL in the config", err, postgres.Server(cfg), cfg.ConnConfig.Host, cfg.ConnConfig.Port)
		}
		return nil, fmt.Errorf("open PostgreSQL store %s: %w", postgres.Server(cfg), err)
	}
	return s, nil
}
