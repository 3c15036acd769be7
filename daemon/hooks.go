package daemon

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/hook"
	"github.com/certfleet/certfleet/manager"
)

// openHooks wires cfg's [events] hooks (docs/events.md): a recorder that
// takes the audit trail's place among the event sinks, so that every event
// a hook wants is owed to it in the same write; and, for the commands that
// work (opts.StartResponders), the dispatcher that sends them, with each
// webhook's secret read from its file now, so that a missing file stops
// the start. Commands that only read or administer the store still owe
// their events (certfleet compromise's revocations): serve sends them.
func (d *Daemon) openHooks(cfg *config.Config, opts Options) error {
	if len(cfg.Events.Hooks) == 0 {
		return nil
	}
	store, ok := d.Store.(hook.Store)
	if !ok {
		return fmt.Errorf("[events]: the store cannot keep event deliveries")
	}
	var (
		hooks   []hook.Hook
		longest time.Duration
	)
	for _, name := range cfg.Events.HookNames() {
		h := cfg.Events.Hooks[name]
		longest = max(longest, h.Timeout)
		hk := hook.Hook{Name: name, Types: h.Types, Certificates: h.Certificates}
		if opts.StartResponders {
			switch h.Type {
			case config.HookWebhook:
				secret, err := readSecretFile(fmt.Sprintf("[events.hooks.%s] secret_file", name), h.SecretFile, minHookSecret)
				if err != nil {
					return err
				}
				hk.Sender = &hook.Webhook{URL: h.URL, Secret: secret, Timeout: h.Timeout}
			case config.HookSocket:
				hk.Sender = &hook.Socket{Path: h.Socket, Ack: h.Ack, Timeout: h.Timeout}
			case config.HookCommand:
				hk.Sender = &hook.Command{Argv: h.Command, Timeout: h.Timeout}
			}
		}
		hooks = append(hooks, hk)
	}
	rec := &hook.Recorder{Store: store, Hooks: hooks}
	if opts.StartResponders {
		instance := opts.Instance
		if instance == "" {
			instance = manager.DefaultInstance()
		}
		// A claim outlasts the slowest hook's attempt twice over, so that
		// no other instance sends a delivery still being tried.
		d.Hooks = &hook.Dispatcher{Store: store, Hooks: hooks, Instance: instance, Now: opts.Now,
			Claim: max(hook.DefaultClaim, 2*longest), Logger: d.Logger.With("component", "events")}
		rec.Wake = d.Hooks.Wake
	}
	d.recorder = rec
	d.events[0] = rec // in the audit trail's place: it writes the trail
	return nil
}

// minHookSecret is the shortest webhook secret accepted: 128 bits of hex
// or text are beyond guessing.
const minHookSecret = 16

// expiringEvents makes the alert evaluator's expiry notifications
// (opened, worsened) expiring events for the hooks that want them. The
// evaluator claims each notification in the store, so one instance
// records it; a notification tried again (another notifier failed)
// records nothing twice: its delivery ID is the event's key.
type expiringEvents struct{ rec *hook.Recorder }

// Notify implements alert.Notifier.
func (x expiringEvents) Notify(ctx context.Context, n alert.Notification) error {
	if n.Kind != certfleet.IncidentExpiry || n.State == certfleet.NotifyResolved {
		return nil
	}
	e := certfleet.Event{At: n.SentAt, Kind: certfleet.EventExpiring, Actor: "instance:" + n.Instance,
		Certificate: n.Certificate, KeyType: n.KeyType, Serial: n.Serial, Reason: string(n.Severity), Detail: n.Summary}
	if _, err := x.rec.Record(ctx, e, n.DeliveryID); err != nil {
		return fmt.Errorf("record the expiring event of %s: %w", n.Certificate, err)
	}
	return nil
}

// wantsExpiring reports whether a hook wants expiring events.
func wantsExpiring(hooks []hook.Hook) bool {
	return slices.ContainsFunc(hooks, func(h hook.Hook) bool {
		return h.Types == nil || slices.Contains(h.Types, certfleet.HookExpiring)
	})
}

// HookRound sends the events owed to the hooks, once (certfleet issue;
// serve sends them continuously). A delivery that fails stays owed and
// is an error.
func (d *Daemon) HookRound(ctx context.Context) (hook.Report, error) {
	if d.Hooks == nil {
		return hook.Report{}, nil
	}
	rep, err := d.Hooks.Round(ctx)
	switch {
	case err != nil:
		return rep, fmt.Errorf("sending events to hooks: %w", err)
	case rep.Failed > 0:
		return rep, fmt.Errorf("%d event delivery(ies) to hooks failed (they stay owed and are sent again; see the log)", rep.Failed)
	}
	return rep, nil
}

// readSecretFile reads a secret of at least minLen bytes from a file that
// not every user may read: the content, with surrounding white space
// trimmed (as ansible-vault reads a password file). what names the
// setting in errors; the secret is never printed.
func readSecretFile(what, path string, minLen int) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%s %s can be read by every user on this host (mode %#o); run chmod 600 %s", what, path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := []byte(strings.TrimSpace(string(b)))
	if len(s) < max(minLen, 1) {
		return nil, fmt.Errorf("%s %s: the secret is %d bytes; use at least %d (e.g. openssl rand -hex 32 > %s)", what, path, len(s), max(minLen, 1), path)
	}
	return s, nil
}
