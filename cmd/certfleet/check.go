package main

import (
	"context"
	"fmt"
	"io"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/preflight"
	"github.com/certfleet/certfleet/solver/http01"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "-config FILE", help("check"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	skipHTTP := fs.Bool("no-http01", false, "skip the http-01 self-tests")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	var st certfleet.Store
	c := &preflight.Checker{Config: cfg, Out: stdout, Persist: daemon.PersistLookup(cfg, &st)} // dns-persist-01 (docs/readiness.md)
	// The store holds "store:NAME" secrets (a TSIG key), acme-dns
	// registrations and, for the http-01 self-test, the challenge tokens
	// that a running certfleet serve answers with.
	httpTest := !*skipHTTP && cfg.Uses(certfleet.ChallengeHTTP01)
	dnsCfg := cfg
	if preflight.NeedsStore(cfg, !*skipHTTP) {
		if st, err = openStore(ctx, cfg.State, newLogger(io.Discard, cfg.Log), cfg.MasterKey); err != nil {
			return err
		}
		defer st.Close()
		if dnsCfg, err = daemon.ResolveSecrets(ctx, cfg, st); err != nil {
			return err
		}
	}
	if c.DNS, err = daemon.NewDNS01Solver(ctx, dnsCfg, st, log); err != nil {
		return &exitError{code: 2, err: err}
	}
	if httpTest {
		c.HTTP01 = &http01.Solver{Store: st}
	}
	failed := c.Run(ctx)
	if c.Warned > 0 {
		fmt.Fprintf(stdout, "%d check(s) could not be completed: see the WARN lines\n", c.Warned)
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d check(s) failed", failed)}
	}
	return nil
}
