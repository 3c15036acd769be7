package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"github.com/certfleet/certfleet/status"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
)

// Version is set at build time with -ldflags "-X main.Version=v1.2.3"; it
// falls back to the module version recorded by the Go toolchain.
var Version = ""

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the daemon: issue, renew, answer challenges, write files", cmdServe},
		{"issue", "one pass: obtain or renew whatever is due, then exit (for cron)", cmdIssue},
		{"status", "show a table of certificates and their renewal state", cmdStatus},
		{"check", "preflight: can every dns-01 and http-01 name be validated? (no CA contact)", cmdCheck},
		{"migrate", "create or upgrade the store's schema and print its version", cmdMigrate},
		{"demo", "quickstart: issue certificates from an embedded test CA, offline", cmdDemo},
		{"token", "create, list or revoke HTTP API tokens", cmdToken},
		{"identity", "host identities: enrollment tokens, list, revoke (mutual TLS)", cmdIdentity},
		{"tenant", "the customers of a shared certfleet: names, account, quotas (create, set, list, delete)", cmdTenant},
		{"account", "list ACME accounts, roll a key over, deactivate or register one", cmdAccount},
		{"compromise", "a key is compromised: revoke its certificates, replace them, track the rollout", cmdCompromise},
		{"secret", "keep TSIG/EAB/DNS API secrets sealed in the store (set, list, delete)", cmdSecret},
		{"audit", "show the audit trail: who did what, to which certificate, from where", cmdAudit},
		{"export", "write the certificates each host needs into an Ansible inventory, keys vaulted", cmdExport},
		{"agent", "on a host: keep certificates in sync with a certfleet server", cmdAgent},
		{"fleet", "forget an agent whose host is out of service (its reports, its alerts)", cmdFleet},
		{"inventory", "show what an [inventory] source would add, change and withdraw (diff)", cmdInventory},
		{"master-key", "generate a master key file for keys encrypted at rest", cmdMasterKey},
		{"rotate-master-key", "re-wrap the store's data key under a new master key, without downtime", cmdRotateMasterKey},
		{"version", "print the version", cmdVersion},
	}
}

// subcommand is one subcommand of a command (token create, ...).
type subcommand struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// dispatch runs the subcommand args[0] names; help (-h, --help, help)
// prints help; anything else is the usage error usage.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer, usage, help string, subs ...subcommand) error {
	if len(args) > 0 {
		for _, s := range subs {
			if s.name == args[0] {
				return s.run(ctx, args[1:], stdout, stderr)
			}
		}
		if isHelp(args[0]) {
			fmt.Fprintln(stdout, help)
			return nil
		}
	}
	return &exitError{code: 2, err: errors.New(usage)}
}

// isHelp reports whether a is a request for help.
func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// exitError carries a process exit code through the command functions.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// Run runs the command line args (without the program name) and returns the
// process exit code: 0 on success, 1 when the work failed, 2 on usage errors.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ee):
			if ee.err != nil {
				fmt.Fprintf(stderr, "certfleet %s: %v\n", c.name, ee.err)
			}
			return ee.code
		default:
			fmt.Fprintf(stderr, "certfleet %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "certfleet: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	var list [][2]string
	for _, c := range commands() {
		list = append(list, [2]string{c.name, c.summary})
	}
	status.Usage(w, list) // aligned however long a name is
}

// newFlagSet makes a FlagSet whose --help prints a usage text to stdout.
func newFlagSet(name, synopsis, description string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("certfleet "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { status.FlagUsage(fs.Output(), "certfleet "+name+" "+synopsis, description, fs) }
	return fs
}

// parseFlags parses args; a --help prints the usage to stdout and returns
// flag.ErrHelp, a bad flag returns a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	if err := parseOnly(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (flags go before arguments; see --help)", fs.Arg(0))}
	}
	return nil
}

// parseFlagsArgs is parseFlags for flags followed by exactly len(what)
// positional arguments (named by what, for the error).
func parseFlagsArgs(fs *flag.FlagSet, args []string, stdout io.Writer, what ...string) ([]string, error) {
	if err := parseOnly(fs, args, stdout); err != nil {
		return nil, err
	}
	if fs.NArg() != len(what) {
		return nil, &exitError{code: 2, err: fmt.Errorf("want %d argument(s) (%v) after the flags, got %d (flags go before arguments; see --help)", len(what), what, fs.NArg())}
	}
	return fs.Args(), nil
}

// parseOnly parses args, printing the usage for a --help.
func parseOnly(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	if slices.ContainsFunc(args, func(a string) bool { return isHelp(a) && a != "help" }) {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	return nil
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Print certfleet's version.", stdout, stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "certfleet", version())
	return nil
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// getenv is the one place cmd reads the environment (STYLE.md §8).
func getenv(key string) string { return os.Getenv(key) }

// helpTexts holds each command's description for --help, one file a
// command (help/NAME.txt, the command's words joined by '-'): prose kept out
// of the Go code, read like a man page.
//
//go:embed help/*.txt
var helpTexts embed.FS

// help returns the --help description of command name ("account rollover").
// Every name the code asks for is checked by TestEveryCommandHasHelp.
func help(name string) string {
	b, err := helpTexts.ReadFile("help/" + strings.ReplaceAll(name, " ", "-") + ".txt")
	if err != nil {
		return "(no description: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}
