package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/identity"
)

func cmdIdentity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr,
		"usage: certfleet identity enroll-token|list|revoke -config FILE ... (see docs/identities.md)",
		"Usage: certfleet identity enroll-token|list|revoke -config FILE [flags]\n\nHost identities: client certificates for agents (docs/identities.md).",
		subcommand{"enroll-token", identityEnrollToken}, subcommand{"list", identityList}, subcommand{"revoke", identityRevoke})
}

func identityEnrollToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("identity enroll-token", "-config FILE -names PATTERNS [-permissions PERMS] [-ttl 1h]", help("identity enroll-token"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	names := fs.String("names", "", "comma-separated name `patterns` the host may have")
	perms := fs.String("permissions", "read-keys", "comma-separated `permissions` (read-certs, read-keys, request-names)")
	ttl := fs.Duration("ttl", identity.DefaultEnrollTTL, "how long the token may be used (once)")
	desc := fs.String("description", "", "which host it is for")
	tenant := fs.String("tenant", "", "bind the identity to this `tenant`")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	pats, ps, err := daemon.ParseTokenScope(*names, *perms, false)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return onStore(ctx, *cfgPath, false, func(cfg *config.Config, st certfleet.Store) error {
		return daemon.EnrollToken(ctx, cfg, st, identity.EnrollRequest{Description: *desc, Names: pats, Permissions: ps,
			Tenant: *tenant, TTL: *ttl}, stdout, stderr)
	})
}

func identityList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("identity list", "-config FILE", "List the host identities and the enrollment tokens (never a secret).", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	return onStore(ctx, *cfgPath, false, func(_ *config.Config, st certfleet.Store) error { return daemon.ListIdentities(ctx, st, stdout) })
}

func identityRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("identity revoke", "-config FILE ID", "Revoke a host identity at once, on every instance.", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	id := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		id, args = args[len(args)-1], args[:len(args)-1]
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	} else if id == "" {
		return &exitError{code: 2, err: fmt.Errorf("give the identity's ID (see certfleet identity list)")}
	}
	return onStore(ctx, *cfgPath, false, func(cfg *config.Config, st certfleet.Store) error {
		if err := daemon.RevokeIdentity(ctx, cfg, st, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "identity %s revoked\n", id)
		return nil
	})
}
