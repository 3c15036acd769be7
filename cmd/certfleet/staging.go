package main

import (
	"context"
	"fmt"
	"io"

	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/staging"
)

const stagingFlagHelp = "test mode: rehearse against the [staging] CA, with its own store, accounts, keys and output root (never production's; see docs/deploy.md)"

// openStagingFor returns an opener of test-mode daemons: the config's
// StagingConfig (checked by config.CheckStaging before anything is opened),
// with commands printed to stdout unless [staging] run_commands is set.
func openStagingFor(stdout io.Writer) func(ctx context.Context, path string, stderr io.Writer) (*daemon.Daemon, error) {
	return func(ctx context.Context, path string, stderr io.Writer) (*daemon.Daemon, error) {
		prod, err := loadConfig(path)
		if err != nil {
			return nil, err
		}
		cfg, err := staging.Server(prod)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		opts := options(newLogger(stderr, cfg.Log))
		opts.StartResponders = true
		if !cfg.Staging.RunCommands {
			opts.PrintCommands = deploy.SyncWriter(stdout)
		}
		fmt.Fprintf(stdout, "test mode: CA %s, state %s, outputs under %s\n", cfg.Staging.Directory, cfg.State, cfg.Staging.OutputRoot)
		return daemon.Open(ctx, cfg, opts)
	}
}
