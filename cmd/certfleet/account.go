package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/status"
)

func cmdAccount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr,
		"usage: certfleet account list|rollover|deactivate|register|declare|forget -config FILE [NAME] (see certfleet account --help)",
		help("account"),
		subcommand{"list", accountList},
		subcommand{"rollover", accountRollover},
		subcommand{"deactivate", accountDeactivate},
		subcommand{"register", accountRegister},
		subcommand{"declare", func(ctx context.Context, a []string, o, e io.Writer) error {
			return declareAccount(ctx, "declare", a, o, e)
		}},
		subcommand{"forget", func(ctx context.Context, a []string, o, e io.Writer) error {
			return declareAccount(ctx, "forget", a, o, e)
		}},
	)
}

// declareAccount is certfleet account declare|forget: accounts declared in
// the store at runtime (daemon.AccountCommand).
func declareAccount(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account "+verb, "-config FILE NAME [KEY=VALUE ...]", daemon.AccountHelp, stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	if err := parseOnly(fs, args, stdout); err != nil {
		return err
	}
	return onStore(ctx, *cfgPath, false, func(cfg *config.Config, st certfleet.Store) error {
		a, err := daemon.AccountCommand(ctx, cfg, st, verb, fs.Args())
		if err == nil {
			fmt.Fprintf(stdout, "account %s %sed %s\n", a.Name, strings.TrimSuffix(verb, "e"), a.Directory)
		}
		return err
	})
}

// onAccount runs fn on the account name of the config, opened with its
// issuers but without responders (account commands contact the CA, but
// answer no challenge), an account the config does not name being a usage
// error.
func onAccount(ctx context.Context, cfgPath, name string, stderr io.Writer, fn func(acct *daemon.Account) error) error {
	d, err := openFile(ctx, cfgPath, stderr, false)
	if err != nil {
		return err
	}
	defer d.Close()
	acct, err := d.Account(name)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return fn(acct)
}

func accountList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account list", "-config FILE", help("account list"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	d, err := openFile(ctx, *cfgPath, io.Discard, false) // reads only: no log lines between the rows
	if err != nil {
		return err
	}
	defer d.Close()
	stored, err := d.Store.Accounts(ctx)
	if err != nil {
		return err
	}
	return status.Accounts(stdout, d.Config.Accounts, stored)
}

func accountRollover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account rollover", "-config FILE NAME", help("account rollover"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME")
	if err != nil {
		return err
	}
	return onAccount(ctx, *cfgPath, pos[0], stderr, func(acct *daemon.Account) error {
		a, err := acct.RolloverKey(ctx)
		if err == nil {
			fmt.Fprintf(stdout, "account %q (%s): key rolled over at %s; the CA refuses the old key from now on\n", a.Name, a.URL, status.Time(a.KeyChangedAt))
		}
		return err
	})
}

func accountDeactivate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account deactivate", "-config FILE --yes NAME", help("account deactivate"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	yes := fs.Bool("yes", false, "confirm: the deactivation cannot be undone")
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME")
	if err != nil {
		return err
	}
	if !*yes {
		return &exitError{code: 2, err: fmt.Errorf("deactivating account %q cannot be undone: add --yes to confirm", pos[0])}
	}
	return onAccount(ctx, *cfgPath, pos[0], stderr, func(acct *daemon.Account) error {
		a, err := acct.Deactivate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "account %q (%s) deactivated; certificates that use it fail until they use another account or you run `certfleet account register %s`\n", a.Name, a.URL, a.Name)
		if users := acct.Users(); len(users) > 0 {
			fmt.Fprintf(stdout, "certificates using it: %v\n", users)
		}
		return nil
	})
}

func accountRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("account register", "-config FILE NAME", help("account register"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME")
	if err != nil {
		return err
	}
	return onAccount(ctx, *cfgPath, pos[0], stderr, func(acct *daemon.Account) error {
		a, err := acct.Register(ctx)
		if err != nil { // acmeissuer.ErrAccountExists too: nothing was done
			return err
		}
		fmt.Fprintf(stdout, "account %q registered at %s: %s\n", a.Name, a.CA, a.URL)
		retried, err := acct.RetryFailed(ctx)
		for _, jk := range retried {
			fmt.Fprintf(stdout, "retrying %s now\n", jk)
		}
		return err
	})
}
