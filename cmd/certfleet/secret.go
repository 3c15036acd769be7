package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/status"
)

// stdin is where `secret set` reads a value given neither by -from-file.
var stdin io.Reader = os.Stdin

func cmdSecret(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr,
		"usage: certfleet secret set|list|delete -config FILE ... (see certfleet secret --help)",
		help("secret"),
		subcommand{"set", secretSet}, subcommand{"list", secretList}, subcommand{"delete", secretDelete})
}

// secretStagingHelp is the --staging flag of the secret commands.
const secretStagingHelp = "the secrets of test mode's store ([staging] state), which test mode reads instead of production's"

func secretSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("secret set", "-config FILE [-from-file PATH] NAME", help("secret set"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, secretStagingHelp)
	from := fs.String("from-file", "", "read the value from this `file` instead of standard input")
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME")
	if err != nil {
		return err
	}
	name := pos[0]
	if err := certfleet.ValidateSecretName(name); err != nil {
		return &exitError{code: 2, err: err}
	}
	var value []byte
	if *from != "" {
		value, err = os.ReadFile(*from)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("-from-file: %w", err)}
		}
	} else {
		value, err = io.ReadAll(io.LimitReader(stdin, certfleet.MaxSecretLen+2))
		if err != nil {
			return fmt.Errorf("read the secret from standard input: %w", err)
		}
	}
	value = bytes.TrimSuffix(bytes.TrimSuffix(value, []byte("\n")), []byte("\r"))
	return onStore(ctx, *cfgPath, *testMode, func(_ *config.Config, st certfleet.Store) error {
		err := daemon.PutSecret(ctx, st, name, value)
		if err == nil {
			fmt.Fprintf(stdout, "secret %s stored (%d bytes, sealed); use it as \"%s%s\"\n", name, len(value), certfleet.SecretRefPrefix, name)
		}
		return err
	})
}

func secretList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("secret list", "-config FILE", "List the stored secrets' names and dates (never their values).", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, secretStagingHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	return onStore(ctx, *cfgPath, *testMode, func(_ *config.Config, st certfleet.Store) error {
		infos, err := st.Secrets(ctx)
		if err != nil {
			return err
		}
		return status.Secrets(stdout, infos)
	})
}

func secretDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("secret delete", "-config FILE NAME", "Delete a stored secret. A config that still names it fails to start, naming it.", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, secretStagingHelp)
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME")
	if err != nil {
		return err
	}
	return onStore(ctx, *cfgPath, *testMode, func(_ *config.Config, st certfleet.Store) error {
		err := daemon.DeleteSecret(ctx, st, pos[0])
		if err == nil {
			fmt.Fprintf(stdout, "secret %s deleted\n", pos[0])
		}
		return err
	})
}
