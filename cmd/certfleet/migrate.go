package main

import (
	"context"
	"fmt"
	"io"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/postgres"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "-config FILE", help("migrate"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	store, err := openStore(ctx, cfg.State, log, cfg.MasterKey)
	if err != nil {
		return err
	}
	defer store.Close()
	if pg, ok := store.(*postgres.Store); ok {
		v, err := pg.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schema version %d (postgres %s)\n", v, daemon.RedactDSN(cfg.State))
		return nil
	}
	fmt.Fprintf(stdout, "schema up to date (sqlite %s)\n", cfg.State)
	return nil
}
