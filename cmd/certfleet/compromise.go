package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/certfleet/certfleet/compromise"
	"github.com/certfleet/certfleet/status"
)

// Exit codes of certfleet compromise beyond 0 (done), 1 (failed) and 2
// (usage).
const (
	// exitRolloutTimeout: everything was revoked and made due, but when
	// --timeout ran out a replacement was not issued yet or a host still
	// served a compromised certificate.
	exitRolloutTimeout = 3
)

func cmdCompromise(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compromise", "-config FILE --yes [--no-wait] [--timeout D] [--issue] NAME|KEY-ID", `
A private key is compromised: act on it in one step. NAME is a certificate
(its current keys, one per key type) or KEY-ID a key (the KEY ID column of
certfleet status: the SHA-256 of the public key, or an unambiguous prefix of
at least 8 hex digits).

certfleet then:
 1. blocks the key: no certificate is ever ordered with it again (reuse_key
    certificates get a new key; a CSR with it is refused);
 2. finds every certificate in the archive made with the key, whatever its
    name (older renewals and other certificates too), and revokes each one
    that has not expired at its CA with reason keyCompromise (signed with
    the compromised key itself where the archive has it, else with the
    account); already revoked is fine;
 3. makes the certificates that currently use the key due now: a running
    certfleet serve orders the replacements with new keys (PostgreSQL: at
    once; SQLite: within its 30 s poll), writes the files and wakes the
    agents' long-polls; with --issue this command orders them itself (for
    setups without a daemon: it starts the challenge responders like
    certfleet issue);
 4. tracks the rollout, printing progress, until every replacement is issued
    and no agent (from their reports) and no configured endpoint serves a
    certificate with the key.

Exit status: 0 done (with --no-wait: revoked and made due), 1 a revocation or
another step failed (the rest was still done), 2 usage error, 3 --timeout ran
out before the rollout finished. Requires --yes: revocation cannot be undone.
See docs/compromise.md.`, stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	yes := fs.Bool("yes", false, "confirm: revoke every certificate of the key at its CA (cannot be undone)")
	noWait := fs.Bool("no-wait", false, "exit after revoking and making the replacements due, without tracking the rollout")
	timeout := fs.Duration("timeout", compromise.DefaultTimeout, "how long to track the rollout before giving up (exit 3)")
	issue := fs.Bool("issue", false, "order the replacements in this process (starts the challenge responders; for setups without a running certfleet serve)")
	pos, err := parseFlagsArgs(fs, args, stdout, "NAME|KEY-ID")
	if err != nil {
		return err
	}
	if !*yes {
		return &exitError{code: 2, err: fmt.Errorf("certfleet compromise revokes every certificate of the key at the CA, which cannot be undone: add --yes to confirm")}
	}
	if *timeout <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("--timeout must be positive, got %s", *timeout)}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	d, err := openDaemon(ctx, cfg, stderr, *issue)
	if err != nil {
		return err
	}
	defer d.Close()
	o := compromise.Options{Out: stdout, NoWait: *noWait, Timeout: *timeout}
	if *issue {
		o.Issue = func(ctx context.Context) error {
			rep, err := d.IssueOnce(ctx)
			status.Pass(stdout, rep)
			return err
		}
	}
	p := &compromise.Playbook{Store: d.Store, Config: d.CurrentConfig, Record: d.RecordEvent, Wake: d.Manager.Wake,
		Revoker: func(account string) compromise.Revoker {
			if iss := d.ACME(account); iss != nil {
				return iss
			}
			return nil
		}}
	err = p.Run(ctx, pos[0], o)
	var ce *compromise.Error
	if errors.As(err, &ce) {
		code := 1
		switch ce.Kind {
		case compromise.BadTarget:
			code = 2
		case compromise.TimedOut:
			code = exitRolloutTimeout
		}
		return &exitError{code: code, err: ce.Err}
	}
	return err
}
