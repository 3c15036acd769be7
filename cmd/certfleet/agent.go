package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
	"github.com/certfleet/certfleet/staging"
)

func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent", "-config agent.toml [--once] [--staging]", help("agent"), stdout, stderr)
	cfgPath := fs.String("config", "", "agent configuration `file` (TOML; see docs/agent.md)")
	once := fs.Bool("once", false, "sync once and exit (for cron)")
	enroll := fs.String("enroll-token", "", "enroll this host first with a one-time `token` (cfe_…, or @FILE holding it) from certfleet identity enroll-token (docs/identities.md)")
	testMode := fs.Bool("staging", false, "test mode: sync from the [staging] server into [staging] output_root, never production's files (see docs/agent.md)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *cfgPath == "" {
		return &exitError{code: 2, err: errors.New("missing -config FILE (see docs/agent.md)")}
	}
	f, err := config.LoadAgent(*cfgPath)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var printCommands io.Writer
	if *testMode {
		if f, err = staging.Agent(f); err != nil {
			return &exitError{code: 2, err: err}
		}
		if !f.Staging.RunCommands {
			printCommands = deploy.SyncWriter(stdout)
		}
		fmt.Fprintf(stdout, "test mode: server %s, state %s, outputs under %s\n", f.Server, f.Agent.StateDir, f.Staging.OutputRoot)
	}
	log := newLogger(stderr, f.Log)
	if *enroll != "" {
		tok, err := readArgOrFile(*enroll)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--enroll-token: %w", err)}
		}
		id, err := agent.EnrollFile(ctx, f, tok)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		fmt.Fprintf(stdout, "enrolled as host identity %s, valid until %s (renewed by the agent)\n", id.ID(), id.Leaf().NotAfter.UTC().Format(time.RFC3339))
	}
	cfg, err := agent.FromFile(f)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg.Logger, cfg.PrintCommands = log, printCommands
	a, err := agent.New(cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if *once {
		if err := a.Once(ctx); err != nil {
			return &exitError{code: 1, err: err}
		}
		return nil
	}
	log.Info("agent started", "agent", a.Name(), "server", f.Server, "certificates", len(cfg.Certificates))
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// readArgOrFile is a flag's value, or with a leading @ the content of the
// file it names (so a secret stays out of the process list).
func readArgOrFile(v string) (string, error) {
	if f, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(f)
		return strings.TrimSpace(string(b)), err
	}
	return v, nil
}
