package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/status"
)

func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr,
		"usage: certfleet token create|list|revoke -config FILE ... (see certfleet token create --help)",
		"Usage: certfleet token create|list|revoke -config FILE [flags]\n\nManage the HTTP API's bearer tokens. Run a subcommand with --help for its flags.",
		subcommand{"create", tokenCreate}, subcommand{"list", tokenList}, subcommand{"revoke", tokenRevoke})
}

// tokenStagingHelp is the --staging flag of the token commands.
const tokenStagingHelp = "the tokens of test mode's API ([staging] state and api_listen), not production's"

// openTokenStore opens the configured store for token commands: with
// testMode, test mode's store ([staging] state), whose tokens are valid
// only on [staging] api_listen.
func openTokenStore(ctx context.Context, cfgPath string, testMode bool) (daemon.TokenStore, func(), error) {
	_, s, err := openQuiet(ctx, cfgPath, testMode)
	if err != nil {
		return nil, nil, err
	}
	ts, err := daemon.APIStore(s)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return ts, func() { s.Close() }, nil
}

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", "-config FILE -names PATTERNS -permissions PERMS [-url] [-description TEXT]", `
Create an API token and print it. It is shown this once: certfleet keeps only
its SHA-256. Names are comma-separated patterns: "example.org" (that name),
"*.example.org" (every name below it), "*" (all). Permissions, comma-separated:
read-certs, read-keys, request-names, admin.

With -url the token is a URL credential, for Bud and Caddy, which cannot send
headers: it works only on [api] url_listen, only in the path
(/u/TOKEN/v1/...), and only for reads. Keep such URLs out of shared logs.`, stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, tokenStagingHelp)
	names := fs.String("names", "", "comma-separated name `patterns` the token covers")
	perms := fs.String("permissions", "read-certs", "comma-separated `permissions`")
	url := fs.Bool("url", false, "make a URL credential (Bud, Caddy)")
	desc := fs.String("description", "", "whose token it is")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	var pats []string
	for _, p := range strings.Split(*names, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if err := certfleet.ValidateNamePattern(p); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("-names: %w", err)}
		}
		pats = append(pats, p)
	}
	if len(pats) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("-names: give at least one pattern, e.g. -names '*.example.org' (or '*' for all)")}
	}
	var ps []certfleet.Permission
	for _, p := range strings.Split(*perms, ",") {
		perm, err := certfleet.ParsePermission(p)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("-permissions: %w", err)}
		}
		if !slices.Contains(ps, perm) {
			ps = append(ps, perm)
		}
	}
	if *url && slices.ContainsFunc(ps, func(p certfleet.Permission) bool { return p == certfleet.PermAdmin || p == certfleet.PermRequestNames }) {
		return &exitError{code: 2, err: fmt.Errorf("-url tokens are for reads only: give read-certs and/or read-keys")}
	}
	ts, closeStore, err := openTokenStore(ctx, *cfgPath, *testMode)
	if err != nil {
		return err
	}
	defer closeStore()
	t, secret, err := daemon.CreateToken(ctx, ts, *desc, pats, ps, *url)
	if secret == "" {
		return err
	}
	fmt.Fprintf(stderr, "token %s created; it is shown only now:\n", t.ID)
	fmt.Fprintln(stdout, secret)
	return err
}

func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token list", "-config FILE", "List the API tokens (never their secrets).", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, tokenStagingHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	ts, closeStore, err := openTokenStore(ctx, *cfgPath, *testMode)
	if err != nil {
		return err
	}
	defer closeStore()
	toks, err := ts.Tokens(ctx)
	if err != nil {
		return err
	}
	return status.Tokens(stdout, toks)
}

func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", "-config FILE ID", "Revoke an API token at once.", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, tokenStagingHelp)
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		// The ID comes last: certfleet token revoke -config F tok_…
		id := args[len(args)-1]
		if err := parseFlags(fs, args[:len(args)-1], stdout); err != nil {
			return err
		}
		ts, closeStore, err := openTokenStore(ctx, *cfgPath, *testMode)
		if err != nil {
			return err
		}
		defer closeStore()
		revoked, err := daemon.RevokeToken(ctx, ts, id)
		if revoked {
			fmt.Fprintf(stdout, "token %s revoked\n", id)
		}
		return err
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	return &exitError{code: 2, err: fmt.Errorf("give the token's ID (see certfleet token list)")}
}
