package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/inventory"
	"github.com/certfleet/certfleet/inventory/dirsource"
	"github.com/certfleet/certfleet/inventory/ldapsource"
	"github.com/certfleet/certfleet/inventory/pgsource"
	"github.com/certfleet/certfleet/status"
)

// Inventory sources ([inventory.NAME], docs/inventory.md): a reconciler
// per source, run under Serve and once before IssueOnce's pass; their
// certificates are written and prepared like the config file's.

// InventoryOptions are what a reconciler needs besides the configuration.
type InventoryOptions struct {
	// Current returns the configuration in force (its [inventory] entries
	// give intervals, graces and defaults). Default: the one given.
	Current func() *config.Config
	// Events receives the sync events; nil records none.
	Events certfleet.EventSink
	// Changed is called when a sync added or changed a certificate.
	Changed func()
	// Now is the clock of the grace periods. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// NewReconcilers builds a reconciler for each [inventory] source of cfg,
// whose "store:NAME" passwords must be resolved (ResolveSecrets); names,
// when given, select sources by name (an unknown one is an error). It
// connects to nothing: the sources do when they are read.
func NewReconcilers(cfg *config.Config, store inventory.Store, names []string, opts InventoryOptions) ([]*inventory.Reconciler, error) {
	for _, n := range names {
		if _, ok := cfg.InventorySource(n); !ok {
			return nil, fmt.Errorf("no inventory source %q in %s (sources: %s)", n, cfg.File, strings.Join(sourceNames(cfg), ", "))
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	current := opts.Current
	if current == nil {
		current = func() *config.Config { return cfg }
	}
	var out []*inventory.Reconciler
	for _, inv := range cfg.Inventory {
		if len(names) > 0 && !slices.Contains(names, inv.Name) {
			continue
		}
		src, err := newInventorySource(inv, log.With(certfleet.LogSource, inv.Name))
		if err != nil {
			return nil, fmt.Errorf("[inventory.%s]: %w", inv.Name, err)
		}
		out = append(out, &inventory.Reconciler{Name: inv.Name, Source: src, Store: store, Config: current,
			Events: opts.Events, Changed: opts.Changed, Now: opts.Now, Logger: log})
	}
	return out, nil
}

func sourceNames(cfg *config.Config) []string {
	var out []string
	for _, inv := range cfg.Inventory {
		out = append(out, inv.Name)
	}
	if len(out) == 0 {
		return []string{"none: add an [inventory.NAME] table"}
	}
	return out
}

func newInventorySource(inv config.Inventory, log *slog.Logger) (inventory.Source, error) {
	switch inv.Type {
	case config.InventoryTypePostgres:
		p := inv.Postgres
		return &pgsource.Source{DSN: p.DSN, Password: p.Password, Query: p.Query, Channel: p.Channel}, nil
	case config.InventoryTypeLDAP:
		l := inv.LDAP
		s := &ldapsource.Source{URL: l.URL, BindDN: l.BindDN, Password: l.Password, Base: l.Base, Filter: l.Filter,
			Scope: l.Scope, Attributes: l.Attributes, Persist: l.Persist, Logger: log}
		if l.TrustedRoots != "" {
			pem, err := os.ReadFile(l.TrustedRoots)
			if err != nil {
				return nil, fmt.Errorf("read trusted_roots: %w", err)
			}
			s.RootCAs = x509.NewCertPool()
			if !s.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("trusted_roots %s holds no PEM certificate", l.TrustedRoots)
			}
		}
		return s, nil
	case config.InventoryTypeDirectory:
		return &dirsource.Source{Dir: inv.Dir.Path, PollInterval: inv.Dir.PollInterval}, nil
	}
	return nil, fmt.Errorf("unknown inventory type %q", inv.Type)
}

// inventoryCertificate returns the certificate name as an inventory source
// declares it.
func (l *liveConfig) inventoryCertificate(name string) (config.Certificate, bool) {
	for _, r := range l.inventory {
		if c, ok := r.Certificate(name); ok {
			return c, true
		}
	}
	return config.Certificate{}, false
}

// certificate returns the certificate named name of the configuration in
// force, or of an inventory source.
func (l *liveConfig) certificate(name string) (config.Certificate, bool) {
	if c, ok := l.config().Certificate(name); ok {
		return c, true
	}
	return l.inventoryCertificate(name)
}

// certificates returns the configuration's certificates and the inventory
// sources'.
func (l *liveConfig) certificates() []config.Certificate {
	out := slices.Clone(l.config().Certificates)
	for _, r := range l.inventory {
		out = append(out, r.Certificates()...)
	}
	return out
}

// dnsRoute is the dns-01 provider of an identifier of an inventory
// certificate, for names the config file does not route.
func (l *liveConfig) dnsRoute(domain string) string {
	for _, r := range l.inventory {
		if p, ok := r.DNSProvider(domain); ok {
			return p
		}
	}
	return ""
}

// Reconcilers are the daemon's inventory reconcilers, one per source.
func (d *Daemon) Reconcilers() []*inventory.Reconciler { return d.live.inventory }

// reconcileOnce runs one pass of every inventory source (certfleet
// issue). Failures are logged by the reconcilers and change nothing.
func (d *Daemon) reconcileOnce(ctx context.Context) {
	for _, r := range d.live.inventory {
		_, _ = r.Pass(ctx)
	}
}

// InventoryDiff prints, for each [inventory] source of cfg (or those
// names selects), what syncing it would add, change and withdraw in store,
// changing nothing. A source that cannot be read is an error after the
// others are printed.
func InventoryDiff(ctx context.Context, w io.Writer, cfg *config.Config, store certfleet.Store, names []string) error {
	if len(cfg.Inventory) == 0 {
		return fmt.Errorf("%s has no [inventory.NAME] source", cfg.File)
	}
	if _, err := NewReconcilers(cfg, store, names, InventoryOptions{}); err != nil {
		return err // an unknown name, before any secret is looked up
	}
	rcfg, err := ResolveSecrets(ctx, cfg, store)
	if err != nil {
		return err
	}
	recs, err := NewReconcilers(rcfg, store, names, InventoryOptions{Current: func() *config.Config { return cfg }})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		p, err := r.Diff(ctx)
		if err != nil {
			fmt.Fprintf(w, "inventory %s: cannot be read: %v\n", r.Name, err)
			errs = append(errs, err)
			continue
		}
		status.InventoryPlan(w, r.Name, p)
	}
	return errors.Join(errs...)
}

// InventoryDiffHelp is the help of `certfleet inventory diff`.
const InventoryDiffHelp = `Show what each [inventory] source of the config file (or the SOURCEs named)
would add (+), change (~), withdraw (-) or keep pending its grace (…), and
which entries it would skip as invalid (!, with the row, DN or file and line)
— changing nothing. Run it before switching a source on, and after editing
its query, filter or files. A source that cannot be read exits 1.`
