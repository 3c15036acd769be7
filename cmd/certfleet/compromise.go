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
	fs := newFlagSet("compromise", "-config FILE --yes [--no-wait] [--timeout D] [--issue] NAME|KEY-ID", help("compromise"), stdout, stderr)
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
