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
	fs := newFlagSet("demo", "[--dir DIR] [--once]", `
The quickstart, entirely offline. It starts an embedded test CA (Pebble, in
this process), whose validator resolves every name to 127.0.0.1 so that it
reaches certfleet's own http-01 and tls-alpn-01 responders on loopback. It then
writes a config file for that CA into DIR and issues an ECDSA certificate, an
RSA certificate (tls-alpn-01) and a multi-name dual (ECDSA + RSA) certificate
through real validation, writes the files, and prints where they are.

Without --once it keeps serving and renews the certificates as they come due
(the demo CA issues short-lived certificates so renewals happen while you
watch). The test CA and its certificates are for trying certfleet only.`, stdout, stderr)
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
