package certfleet

import "sync"

// Changes is an in-process broadcast: Notify wakes everyone waiting on the
// channel Wait returned before it. The manager's deployer and the API share
// one, so long-polling clients learn of a new certificate at once. Waiters
// re-read the store.
//
// What changed may be said, for caches of the store (issue 13: the API's
// cache of each job's current certificate was dropped whole at every PUT
// and every notification, so that under load nearly every GET read the
// store): Notify says anything may have changed here, NotifySpec that one
// certificate's jobs did, NotifyElsewhere that another instance changed
// something (a cache may keep what it holds for the time it promises, and
// waiters re-read). Version tells a cache whether its copy still stands.
//
// The zero value is ready; it is safe for concurrent use.
type Changes struct {
	mu    sync.Mutex        // guards ch, seq, all, specs
	ch    chan struct{}     // closed and replaced by every notification
	seq   uint64            // notifications that invalidate, counted
	all   uint64            // seq at the last Notify (or forgetting of specs)
	specs map[string]uint64 // seq at each spec's last NotifySpec
}

// maxChangedSpecs bounds Changes' memory of which certificates changed:
// beyond it the memory is dropped and counts as a Notify (every cached
// copy is read again once).
const maxChangedSpecs = 10000

// Wait returns a channel closed at the next notification of any kind.
func (c *Changes) Wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// Notify wakes every current waiter and tells caches that anything may
// have changed. It never blocks.
func (c *Changes) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.all, c.specs = c.seq, nil
	c.wakeLocked()
}

// NotifySpec wakes every current waiter and tells caches that the jobs of
// certificate spec changed (a certificate issued, settings written). It
// never blocks.
func (c *Changes) NotifySpec(spec string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if len(c.specs) >= maxChangedSpecs {
		c.all, c.specs = c.seq, nil
	} else {
		if c.specs == nil {
			c.specs = make(map[string]uint64)
		}
		c.specs[spec] = c.seq
	}
	c.wakeLocked()
}

// NotifyElsewhere wakes every current waiter, for a change another
// instance made (its notification says nothing of what): caches keep what
// they hold for as long as they promise to. It never blocks.
func (c *Changes) NotifyElsewhere() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeLocked()
}

// Version returns the version of spec's state as notified: a copy read
// after Version returned v is current while Version(spec) returns v (up
// to the changes of other instances, which NotifyElsewhere leaves to the
// cache's own expiry).
func (c *Changes) Version(spec string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.all, c.specs[spec])
}

func (c *Changes) wakeLocked() {
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}
