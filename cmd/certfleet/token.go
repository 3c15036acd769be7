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

func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, args, stdout, stderr,
		"usage: certfleet token create|list|revoke -config FILE ... (see certfleet token create --help)",
		"Usage: certfleet token create|list|revoke -config FILE [flags]\n\nManage the HTTP API's bearer tokens. Run a subcommand with --help for its flags.",
		subcommand{"create", tokenCreate}, subcommand{"list", tokenList}, subcommand{"revoke", tokenRevoke})
}

// tokenStagingHelp is the --staging flag of the token commands.
const tokenStagingHelp = "the tokens of test mode's API ([staging] state and api_listen), not production's"

// onTokens runs fn on the configured store's tokens (onStore): with
// testMode, test mode's store ([staging] state), whose tokens are valid
// only on [staging] api_listen.
func onTokens(ctx context.Context, cfgPath string, testMode bool, fn func(ts daemon.TokenStore) error) error {
	return onStore(ctx, cfgPath, testMode, func(_ *config.Config, s certfleet.Store) error {
		ts, err := daemon.APIStore(s)
		if err != nil {
			return err
		}
		return fn(ts)
	})
}

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", "-config FILE -names PATTERNS -permissions PERMS [-url] [-description TEXT]", help("token create"), stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, tokenStagingHelp)
	names := fs.String("names", "", "comma-separated name `patterns` the token covers")
	perms := fs.String("permissions", "read-certs", "comma-separated `permissions`")
	url := fs.Bool("url", false, "make a URL credential (Bud, Caddy)")
	desc := fs.String("description", "", "whose token it is")
	tenant := fs.String("tenant", "", "bind the token to this `tenant`: names within its own, never admin (see certfleet tenant)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	pats, ps, err := daemon.ParseTokenScope(*names, *perms, *url)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return onTokens(ctx, *cfgPath, *testMode, func(ts daemon.TokenStore) error {
		t, secret, err := daemon.CreateTenantToken(ctx, ts, *tenant, *desc, pats, ps, *url)
		if secret != "" {
			fmt.Fprintf(stderr, "token %s created; it is shown only now:\n", t.ID)
			fmt.Fprintln(stdout, secret)
		}
		return err
	})
}

func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token list", "-config FILE", "List the API tokens (never their secrets).", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, tokenStagingHelp)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	return onTokens(ctx, *cfgPath, *testMode, func(ts daemon.TokenStore) error {
		toks, err := ts.Tokens(ctx)
		if err != nil {
			return err
		}
		return status.Tokens(stdout, toks)
	})
}

func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", "-config FILE ID", "Revoke an API token at once.", stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	testMode := fs.Bool("staging", false, tokenStagingHelp)
	id := ""
	if len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-") {
		id, args = args[len(args)-1], args[:len(args)-1] // the ID comes last: token revoke -config F tok_…
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	} else if id == "" {
		return &exitError{code: 2, err: fmt.Errorf("give the token's ID (see certfleet token list)")}
	}
	return onTokens(ctx, *cfgPath, *testMode, func(ts daemon.TokenStore) error {
		revoked, err := daemon.RevokeToken(ctx, ts, id)
		if revoked {
			fmt.Fprintf(stdout, "token %s revoked\n", id)
		}
		return err
	})
}
