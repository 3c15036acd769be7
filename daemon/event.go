package daemon

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/config"
)

// Operator names the operator running this process, for the Actor of the
// events of commands run by hand: "cli:USER".
func Operator() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli:uid-" + strconv.Itoa(os.Getuid())
}

// Host is where a command or a config sync ran, for Event.Remote: this
// host's name.
func Host() string {
	h, _ := os.Hostname()
	return h
}

// eventSink is where commands record events: the daemon's sinks when
// wired, else the store's audit trail.
func (d *Daemon) eventSink() certfleet.EventSink {
	if d.Manager.Events != nil {
		return d.Manager.Events
	}
	return d.Store
}

// RecordEvent records e through the daemon's event sinks (the audit trail
// first), filling in its time, its actor (Operator) and its remote (Host)
// when unset. A failure is logged, not returned: the act it records is
// done.
func (d *Daemon) RecordEvent(ctx context.Context, e certfleet.Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if e.Actor == "" {
		e.Actor = Operator()
	}
	if e.Remote == "" {
		e.Remote = Host()
	}
	if err := d.eventSink().RecordEvent(ctx, e); err != nil {
		d.Logger.Error("record event", "event", e, certfleet.LogError, err)
	}
}

// recordSync records one config_changed event per certificate a config
// sync added, changed or withdrew, by "config:FILE", with the sync's
// summary; a sync that changed nothing records nothing. Failures are
// logged: the sync itself is done.
func (d *Daemon) recordSync(ctx context.Context, cfg *config.Config, res certfleet.SyncResult) {
	file := cfg.File
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	now, detail := time.Now(), res.String() // once: it walks every name of the sync
	for _, c := range []struct {
		reason string
		names  []string
	}{{"added", res.Added}, {"changed", res.Changed}, {"disabled", res.Disabled}} {
		for _, name := range c.names {
			e := certfleet.Event{At: now, Kind: certfleet.EventConfigChanged, Actor: "config:" + file, Remote: Host(),
				Certificate: name, Reason: c.reason, Detail: detail}
			if err := d.events.RecordEvent(ctx, e); err != nil {
				d.Logger.Error("record audit event", "event", e, certfleet.LogError, err)
			}
		}
	}
}
