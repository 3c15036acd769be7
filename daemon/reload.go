package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/inventory"
)

// liveConfig is the configuration in force, swapped whole on reload, with
// what is derived from it.
type liveConfig struct {
	cfg     atomic.Pointer[config.Config]
	webroot atomic.Pointer[webrootRouter]
	// inventory are the reconcilers of the [inventory] sources, set by
	// Open before anything runs and fixed afterwards (a change of the
	// sources needs a restart).
	inventory []*inventory.Reconciler
}

func newLiveConfig(cfg *config.Config) *liveConfig {
	l := &liveConfig{}
	l.set(cfg)
	return l
}

func (l *liveConfig) set(cfg *config.Config) {
	l.webroot.Store(newWebrootRouter(cfg))
	l.cfg.Store(cfg)
}

func (l *liveConfig) config() *config.Config { return l.cfg.Load() }

// liveWebroot is the webroot solver of the configuration in force.
type liveWebroot struct{ live *liveConfig }

func (w liveWebroot) Present(ctx context.Context, chal certfleet.Challenge) error {
	return w.live.webroot.Load().Present(ctx, chal)
}

func (w liveWebroot) CleanUp(ctx context.Context, chal certfleet.Challenge) error {
	return w.live.webroot.Load().CleanUp(ctx, chal)
}

// CurrentConfig returns the configuration in force.
func (d *Daemon) CurrentConfig() *config.Config { return d.live.config() }

// Reload applies a new configuration without a restart: certificates added,
// changed or removed, their outputs, commands and web roots, and the
// defaults of the inventory sources' certificates. Changes that
// need new connections or listeners (the store, accounts, responder
// addresses, a challenge whose responder is not running, concurrency,
// [metrics], [alerts], [events], [rate_limits], [dns01], state_dir, the
// [inventory] sources themselves) are
// refused with an error that lists them; the old configuration then stays in
// force, so a typo never stops a running daemon.
func (d *Daemon) Reload(ctx context.Context, next *config.Config) error {
	cur := d.CurrentConfig()
	var need []string
	if next.State != cur.State {
		need = append(need, "state")
	}
	if !reflect.DeepEqual(next.Accounts, cur.Accounts) {
		need = append(need, "[ca] or [accounts]")
	}
	if next.HTTP01Listen != cur.HTTP01Listen || next.RespondsTo(certfleet.ChallengeHTTP01) && d.HTTP01Addr == "" {
		need = append(need, "[http01]")
	}
	if next.TLSALPN01Listen != cur.TLSALPN01Listen || next.RespondsTo(certfleet.ChallengeTLSALPN01) && d.TLSALPN01Addr == "" {
		need = append(need, "[tlsalpn01]")
	}
	if next.Renewal.Concurrency != cur.Renewal.Concurrency {
		need = append(need, "[renewal] concurrency")
	}
	if next.Scheduler != cur.Scheduler {
		need = append(need, "[scheduler]")
	}
	if next.API != cur.API {
		need = append(need, "[api]") // its listeners and TLS certificate are set up once, at the start
	}
	if next.Metrics != cur.Metrics {
		need = append(need, "[metrics]")
	}
	if !reflect.DeepEqual(next.Alerts, cur.Alerts) {
		need = append(need, "[alerts]")
	}
	if !reflect.DeepEqual(next.Events, cur.Events) {
		need = append(need, "[events]") // the recorder and the hooks' senders are built at the start
	}
	// The rate-limit budgets, the dns-01 solver and its journal are built
	// once, at the start, from these.
	if !reflect.DeepEqual(next.RateLimits, cur.RateLimits) {
		need = append(need, "[rate_limits]")
	}
	if !reflect.DeepEqual(next.DNS01, cur.DNS01) {
		need = append(need, "[dns01]")
	}
	if next.StateDir != cur.StateDir {
		need = append(need, "state_dir")
	}
	if !config.SameInventory(next.Inventory, cur.Inventory) {
		need = append(need, "[inventory] sources (their defaults reload)")
	}
	if len(need) > 0 {
		return fmt.Errorf("not reloaded: changes to %s need a restart (systemctl restart certfleet); the running configuration stays in force", strings.Join(need, ", "))
	}
	if err := next.CheckHost(); err != nil { // owners, groups, output paths (docs/deploy-state.md)
		return fmt.Errorf("not reloaded: the certificates' outputs cannot be written on this host; the running configuration stays in force:\n%w", err)
	}
	res, err := d.Store.SyncSpecs(ctx, certfleet.SourceConfig, next.Specs())
	if err != nil {
		return fmt.Errorf("not reloaded: load certificates from %s into the store: %w", next.File, err)
	}
	d.live.set(next)
	d.retainEndpoints(next)
	d.Logger.Info("configuration reloaded", "file", next.File, "summary", res.String())
	d.recordSync(ctx, next, res)
	d.Manager.Wake()
	for _, r := range d.live.inventory {
		r.Wake() // the defaults their certificates inherit may have changed
	}
	if err := d.SyncOutputs(ctx); err != nil {
		return errors.Join(fmt.Errorf("reloaded, but some certificate files could not be written"), err)
	}
	return nil
}

// ReloadOn reloads the configuration load returns whenever trigger fires
// (SIGHUP), until ctx ends. A configuration that cannot be loaded or
// applied is logged and the running one stays in force.
func (d *Daemon) ReloadOn(ctx context.Context, trigger <-chan os.Signal, load func() (*config.Config, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
			next, err := load()
			if err == nil {
				err = d.Reload(ctx, next)
			}
			if err != nil {
				d.Logger.Error("reload failed; the running configuration stays in force", certfleet.LogError, err)
			}
		}
	}
}
