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
		`Usage: certfleet account list|rollover|deactivate|register|declare|forget -config FILE [flags] [NAME]

Manage the ACME accounts of the config ([ca] is "default", [accounts.NAME]
the others): list them, roll an account's key over (RFC 8555 §7.3.5),
deactivate one (§7.3.6), or register one again after deactivation; declare
one in the store, used at once without a restart, or forget it. NAME is
the account's name. Run a subcommand with --help for its flags; see
docs/accounts.md.`,
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
	fs := newFlagSet("account list", "-config FILE", `
List the ACME accounts: every account of the config and every account in the
store (an account of a CA no longer configured is kept), with its CA, URL,
status, key type and dates. Keys are never shown. Reads the store only.`, stdout, stderr)
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
	fs := newFlagSet("account rollover", "-config FILE NAME", `
Replace the key of account NAME with a new one (RFC 8555 §7.3.5): the account
and its URL stay, the CA refuses the old key from then on. The new key is
stored (sealed, as pending) before the CA is asked and becomes the account key
once the CA accepted it; if certfleet is interrupted in between, the next use
of the account asks the CA which key it knows. Safe beside a running serve:
orders in flight with the old key fail once and are retried with the new one.`, stdout, stderr)
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
	fs := newFlagSet("account deactivate", "-config FILE --yes NAME", `
Deactivate account NAME at its CA (RFC 8555 §7.3.6). This cannot be undone:
the CA refuses the account for good. The store marks it deactivated first, so
no instance orders with it; certificates that use it then fail with an error
saying what to do, and certfleet never registers a new account for NAME by
itself. To order again: point those certificates at another account, or run
certfleet account register NAME. Certificates already issued stay valid (use
certfleet compromise to revoke them). Requires --yes.`, stdout, stderr)
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
	fs := newFlagSet("account register", "-config FILE NAME", `
Register account NAME at its CA now: a new account when none is stored (which
certfleet otherwise does at the first order), or a new account in place of a
deactivated one (the only way a deactivated account's name is used again).
The certificates of the account that failed meanwhile are made due at once. A
valid registered account is left alone (exit 1).`, stdout, stderr)
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
