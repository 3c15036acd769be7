package main

import (
	"cmp"
	"context"
	"io"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/daemon"
	"github.com/certfleet/certfleet/status"
)

// cmdTenant is certfleet tenant create|set|list|delete; daemon.TenantCommand
// does the work.
func cmdTenant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verb := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	fs := newFlagSet("tenant "+verb, "create|set|list|delete -config FILE [-withdraw] [NAME [KEY=VALUE ...]]", daemon.TenantHelp, stdout, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	withdraw := fs.Bool("withdraw", false, "delete: withdraw the tenant's certificates with it (archive kept, nothing revoked)")
	if err := parseOnly(fs, args, stdout); err != nil {
		return err
	}
	return onStore(ctx, *cfgPath, false, func(cfg *config.Config, st certfleet.Store) error {
		out, err := daemon.TenantCommand(ctx, cfg, st, verb, fs.Args(), *withdraw)
		return cmp.Or(err, status.Tenants(stdout, out.Tenants, out.Usage, out.Deleted))
	})
}
