package main

import (
	"context"
	"fmt"
	"io"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
)

func cmdFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr, "usage: certfleet fleet forget -config FILE AGENT (see certfleet fleet forget --help)",
		"Usage: certfleet fleet forget -config FILE AGENT\n\nManage the fleet of agents the server knows from their reports. Run a subcommand with --help for its flags.",
		subcommand{"forget", fleetForget})
}

func fleetForget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fleet forget", "-config FILE AGENT", help("fleet forget"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	pos, err := parseFlagsArgs(fs, args, stdout, "AGENT")
	if err != nil {
		return err
	}
	name := pos[0]
	if err := certfleet.ValidateAgentName(name); err != nil {
		return &exitError{code: 2, err: err}
	}
	return onStore(ctx, *cfgPath, false, func(_ *config.Config, st certfleet.Store) error {
		n, err := daemon.ForgetAgent(ctx, st, name)
		if n >= 0 {
			fmt.Fprintf(stdout, "agent %s forgotten (%d report(s) deleted)\n", name, n)
		}
		return err
	})
}
