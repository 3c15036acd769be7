package certfleet

import "sync"

// Changes is an in-process broadcast: Notify wakes everyone waiting on the
// channel Wait returned before it. The manager's deployer and the API share
// one, so long-polling clients learn of a new certificate at once. It says
// only that something changed, not what: waiters re-read the store. The
// zero value is ready; it is safe for concurrent use.
type Changes struct {
	mu sync.Mutex    // guards ch
	ch chan struct{} // closed and replaced by Notify
}

// Wait returns a channel closed at the next Notify.
func (c *Changes) Wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// Notify wakes every current waiter. It never blocks.
func (c *Changes) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}
