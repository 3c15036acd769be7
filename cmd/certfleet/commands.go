package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/staging"
	"github.com/certfleet/certfleet/status"
	"github.com/certfleet/certfleet/status/report"
)

const configFlagHelp = "configuration `file` (TOML; see examples/certfleet.toml)"

// newLogger builds the process logger from the config's [log] table.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadConfig reads the config file named by -config, failing with a usage
// error when none is given.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, &exitError{code: 2, err: errors.New("missing -config FILE (see examples/certfleet.toml, or try: certfleet demo)")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return cfg, nil
}

// openStore opens the store state names, with the master key of mk or the
// environment (daemon.MasterKeyEnv).
func openStore(ctx context.Context, state string, log *slog.Logger, mk config.MasterKey) (certfleet.Store, error) {
	keys, err := daemon.LoadKeys(mk, getenv(daemon.MasterKeyEnv))
	if err != nil {
		return nil, err
	}
	return daemon.OpenStore(ctx, state, keys, log)
}

// openQuiet opens the store of the config file at path, logging nothing
// (the command's output is a table); with testMode, test mode's store
// ([staging] state).
func openQuiet(ctx context.Context, path string, testMode bool) (*config.Config, certfleet.Store, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	if testMode {
		if cfg, err = staging.Server(cfg); err != nil {
			return nil, nil, &exitError{code: 2, err: err}
		}
	}
	s, err := openStore(ctx, cfg.State, newLogger(io.Discard, cfg.Log), cfg.MasterKey)
	return cfg, s, err
}

// onStore opens the store of the config file at path quietly (openQuiet)
// and runs fn on it, closing it after; an EINVALID error of fn is a usage
// error (exit 2).
func onStore(ctx context.Context, path string, testMode bool, fn func(cfg *config.Config, st certfleet.Store) error) error {
	cfg, st, err := openQuiet(ctx, path, testMode)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := fn(cfg, st); certfleet.ErrorCode(err) == certfleet.EINVALID {
		return &exitError{code: 2, err: err}
	} else {
		return err
	}
}

// options are the daemon options of a command: its logger, the master
// key and the profiler's address from the environment, the version.
func options(log *slog.Logger) daemon.Options {
	return daemon.Options{Logger: log, MasterKey: getenv(daemon.MasterKeyEnv), Version: version(), Pprof: getenv(daemon.PprofEnv)}
}

// openDaemon opens the daemon of cfg, logging to logTo, with the challenge
// responders when responders (the commands that issue).
func openDaemon(ctx context.Context, cfg *config.Config, logTo io.Writer, responders bool) (*daemon.Daemon, error) {
	opts := options(newLogger(logTo, cfg.Log))
	opts.StartResponders = responders
	return daemon.Open(ctx, cfg, opts)
}

// openFile loads the config file and opens its daemon, logging to stderr,
// with the challenge responders when responders (openDaemon).
func openFile(ctx context.Context, path string, stderr io.Writer, responders bool) (*daemon.Daemon, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	return openDaemon(ctx, cfg, stderr, responders)
}

// openWorking opens a daemon that issues: store, issuers and responders.
func openWorking(ctx context.Context, path string, stderr io.Writer) (*daemon.Daemon, error) {
	return openFile(ctx, path, stderr, true)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "-config FILE", help("serve"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, stagingFlagHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	open := openWorking
	if *testMode {
		open = openStagingFor(stdout)
	}
	// While the store is unreachable (a database restarting, a network
	// partition) serve keeps trying instead of exiting.
	d, err := daemon.OpenRetrying(ctx, func(ctx context.Context) (*daemon.Daemon, error) { return open(ctx, *cfgPath, stderr) },
		func(err error, wait time.Duration) {
			fmt.Fprintf(stderr, "certfleet serve: %v\ncertfleet serve: retrying in %s (Ctrl-C to stop)\n", err, wait.Round(time.Second))
		})
	if err != nil {
		return err
	}
	defer d.Close()
	if _, _, err := d.StartAPI(ctx, daemon.APIOptions{}); err != nil {
		return err
	}
	if _, err := d.StartMetrics(ctx, nil); err != nil {
		return err
	}
	// SIGHUP reloads the config file (systemctl reload certfleet).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go d.ReloadOn(ctx, hup, func() (*config.Config, error) {
		next, err := config.Load(*cfgPath)
		if err == nil && *testMode {
			next, err = staging.Server(next) // test mode stays test mode
		}
		return next, err
	})
	return d.Serve(ctx)
}

func cmdIssue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("issue", "-config FILE", help("issue"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, stagingFlagHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	open := openWorking
	if *testMode {
		open = openStagingFor(stdout)
	}
	d, err := open(ctx, *cfgPath, stderr)
	if err != nil {
		return err
	}
	defer d.Close()
	rep, err := d.IssueOnce(ctx)
	status.Pass(stdout, rep)
	if err != nil {
		return err
	}
	arep, alertErr := d.AlertRound(ctx)
	status.Alerts(stdout, arep)
	if err := status.PassFailure(rep, d.Config.File, alertErr); err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "-config FILE", daemon.ExportHelp, stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, st, err := openQuiet(ctx, *cfgPath, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return daemon.Export(ctx, cfg, st, stdout)
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "-config FILE [NAME]", help("status"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	all := fs.Bool("all", false, "include withdrawn certificates")
	endpoints := fs.Bool("endpoints", false, "also connect to every configured endpoint and check it serves the current certificate (exit 1 if one does not)")
	if err := parseOnly(fs, args, stdout); err != nil {
		return err
	} else if fs.NArg() > 1 {
		return &exitError{code: 2, err: fmt.Errorf("status takes at most one certificate NAME, got %q (flags go before it)", fs.Args())}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if daemon.NoStoreYet(cfg, stdout) { // a read creates nothing
		return nil
	}
	d, err := openDaemon(ctx, cfg, io.Discard, false)
	if err != nil {
		return err
	}
	defer d.Close()
	bad, err := report.Status(ctx, stdout, d, report.Options{Name: fs.Arg(0), All: *all, Endpoints: *endpoints}, time.Now())
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d endpoint(s) do not serve the current certificate", bad)}
	}
	return err
}

func cmdInventory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr, "usage: certfleet inventory diff -config FILE [SOURCE...]", "Usage: certfleet inventory diff -config FILE [SOURCE...]\n\n"+daemon.InventoryDiffHelp,
		subcommand{"diff", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlagSet("inventory diff", "-config FILE [SOURCE...]", daemon.InventoryDiffHelp, stdout, stderr)
			cfgPath := fs.String("config", "", configFlagHelp)
			if err := parseOnly(fs, args, stdout); err != nil {
				return err
			}
			cfg, st, err := openQuiet(ctx, *cfgPath, false)
			if err != nil {
				return err
			}
			defer st.Close()
			return daemon.InventoryDiff(ctx, stdout, cfg, st, fs.Args())
		}})
}
