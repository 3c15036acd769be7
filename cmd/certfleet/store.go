package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/certfleet/certfleet"
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
// URL, else a SQLite file, whose directory is created (mode 0700).
func openStore(ctx context.Context, state string, log *slog.Logger) (certfleet.Store, error) {
	if isPostgres(state) {
		return openPostgres(ctx, state, log)
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory for %s: %w", state, err)
	}
	s := sqlite.New(state)
	s.Logger = log
	if err := s.Open(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", state, err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string, log *slog.Logger) (*postgres.Store, error) {
	cfg, err := postgres.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", redactDSN(dsn), err)
	}
	s := postgres.New(dsn)
	s.Logger = log
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
