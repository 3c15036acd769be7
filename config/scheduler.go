package config

import "time"

var schedulerKeys = []string{"takeover", "heartbeat"}

// Bounds of [scheduler]'s durations, with reasons.
const (
	// minTakeover keeps a lease longer than a store round trip on a busy
	// database plus a heartbeat or two.
	minTakeover = 2 * time.Second
	// maxTakeover: a dead instance's work waiting longer than an hour is
	// an outage of its own.
	maxTakeover = time.Hour
	// minHeartbeat bounds the writes a job in flight costs.
	minHeartbeat = 100 * time.Millisecond
)

// Scheduler configures how instances sharing a store hand work over
// ([scheduler], docs/postgres.md "Leases and takeover"). Zero fields mean
// the manager's defaults (manager.DefaultLease, manager.DefaultHeartbeat).
type Scheduler struct {
	// Takeover is the lease length: a job an instance works on is taken
	// over by another one this long after its last heartbeat (the
	// instance died or lost the store).
	Takeover time.Duration
	// Heartbeat is how often a job in flight renews its lease. It is at
	// most a third of Takeover, so that two missed heartbeats (a store
	// blip) do not give the work away.
	Heartbeat time.Duration
}

func (d *decoder) scheduler(top *table, cfg *Config) {
	t := d.subtable(top, "scheduler")
	if t == nil {
		return
	}
	defer d.unknown(t, schedulerKeys)
	var hbPath path
	if s, p, ok := d.str(t, "takeover"); ok {
		mark := d.mark()
		v := d.duration(p, s)
		switch {
		case d.mark() != mark: // reported by duration
		case v < minTakeover || v > maxTakeover:
			d.problemf(p, "%q is out of range; use %s to %s (default %s): how long after an instance's last heartbeat another one takes its work over", s, minTakeover, maxTakeover, "10s")
		default:
			cfg.Scheduler.Takeover = v
		}
	}
	if s, p, ok := d.str(t, "heartbeat"); ok {
		mark := d.mark()
		v := d.duration(p, s)
		switch {
		case d.mark() != mark:
		case v < minHeartbeat:
			d.problemf(p, "%q is too short; use at least %q", s, minHeartbeat.String())
		default:
			cfg.Scheduler.Heartbeat, hbPath = v, p
		}
	}
	takeover := cfg.Scheduler.Takeover
	if takeover == 0 {
		takeover = defaultTakeover
	}
	if hb := cfg.Scheduler.Heartbeat; hb != 0 && hb*3 > takeover {
		d.problemf(hbPath, "heartbeat %s is more than a third of takeover %s: a job would be taken over after two missed heartbeats; shorten heartbeat or lengthen takeover", hb, takeover)
		cfg.Scheduler.Heartbeat = 0
	}
}

// defaultTakeover is manager.DefaultLease (config does not import
// manager), for the checks above.
const defaultTakeover = 10 * time.Second
