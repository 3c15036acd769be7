package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/internal/demo"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[--dir DIR] [--once]", help("demo"), stdout, stderr)
	dir := fs.String("dir", "certfleet-demo", "`directory` for the state, config and certificate files")
	once := fs.Bool("once", false, "issue the demo certificates, print a summary and exit")
	validity := fs.Duration("validity", 10*time.Minute, "lifetime of the demo CA's certificates (renewed at half of it)")
	verbose := fs.Bool("v", false, "log debug details")
	listen := fs.String("listen", "127.0.0.1:8555", "`address` of the HTTP API while the demo serves (\"\" for none)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *validity < time.Minute {
		return &exitError{code: 2, err: fmt.Errorf("-validity %s is too short; use at least 1m", *validity)}
	}
	// Pebble reads these in its constructors. No random validation delay;
	// the rest keep Pebble's defaults (it rejects some nonces on purpose,
	// which exercises our retries).
	if getenv("PEBBLE_VA_NOSLEEP") == "" {
		os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	}
	return demo.Run(ctx, demo.Options{Dir: *dir, Once: *once, Validity: *validity, Verbose: *verbose, Listen: *listen, Out: stdout,
		Logger: func(l config.Log) *slog.Logger { return newLogger(stderr, l) }, Daemon: options(nil)})
}
