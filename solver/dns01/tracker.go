package dns01

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// tracker checks the propagation of every presented record in one loop:
// each round it asks each authoritative server once per record name, for
// all the records that are due, so a wave of many challenges costs one
// query per name and server per round, not one per challenge and waiter.
type tracker struct {
	s *Solver

	mu      sync.Mutex // guards entries, running, lastLog
	entries map[string]*entry
	running bool
	lastLog time.Time
	wake    chan struct{}
}

// entry is one presented record being tracked.
type entry struct {
	rec      Record
	servers  []Nameserver
	missing  map[string]string // server addr → last reason it lacks the value
	deadline time.Time
	next     time.Time
	interval time.Duration
	done     chan struct{} // closed when err is final
	err      error
}

func newTracker(s *Solver) *tracker {
	return &tracker{s: s, entries: make(map[string]*entry), wake: make(chan struct{}, 1)}
}

func (t *tracker) add(key string, rec Record, servers []Nameserver) {
	timeout := t.s.PropagationTimeout
	if timeout <= 0 {
		timeout = DefaultPropagationTimeout
	}
	now := time.Now()
	e := &entry{
		rec: rec, servers: servers, missing: make(map[string]string, len(servers)),
		deadline: now.Add(timeout), next: now, interval: t.pollInterval(), done: make(chan struct{}),
	}
	for _, ns := range servers {
		e.missing[ns.Addr] = "not asked yet"
	}
	t.mu.Lock()
	if old, ok := t.entries[key]; ok {
		old.finish(fmt.Errorf("presented again"))
	}
	t.entries[key] = e
	if !t.running {
		t.running = true
		t.lastLog = now
		go t.loop()
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tracker) pollInterval() time.Duration {
	if t.s.PollInterval > 0 {
		return t.s.PollInterval
	}
	return DefaultPollInterval
}

func (t *tracker) maxPollInterval() time.Duration {
	if t.s.MaxPollInterval > 0 {
		return t.s.MaxPollInterval
	}
	return DefaultMaxPollInterval
}

// finish records the outcome once; callers hold t.mu.
func (e *entry) finish(err error) {
	select {
	case <-e.done:
		return
	default:
	}
	e.err = err
	close(e.done)
}

func (t *tracker) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[key]; ok {
		e.finish(fmt.Errorf("cleaned up before it propagated"))
		delete(t.entries, key)
	}
}

func (t *tracker) wait(ctx context.Context, key string) error {
	t.mu.Lock()
	e, ok := t.entries[key]
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("dns-01: wait for a challenge that was not presented")
	}
	select {
	case <-e.done:
		return e.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probe is one question for one server: the TXT values at name.
type probe struct{ addr, name string }

// loop runs while some record is still propagating.
func (t *tracker) loop() {
	timeout := t.s.resolver().timeout()
	for {
		now := time.Now()
		t.mu.Lock()
		due := make(map[probe][]*entry)
		asked := make(map[*entry]bool)
		var pending []*entry
		for _, e := range t.entries {
			select {
			case <-e.done:
				continue
			default:
			}
			pending = append(pending, e)
			if now.Before(e.next) {
				continue
			}
			asked[e] = true
			for addr := range e.missing {
				p := probe{addr, e.rec.FQDN}
				due[p] = append(due[p], e)
			}
		}
		if len(pending) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		t.logProgressLocked(now)
		t.mu.Unlock()

		answers := t.ask(due, timeout)

		t.mu.Lock()
		now = time.Now()
		for p, es := range due {
			a := answers[p]
			for _, e := range es {
				switch {
				case a.err != nil:
					e.missing[p.addr] = a.err.Error()
				case slices.Contains(a.values, e.rec.Value):
					delete(e.missing, p.addr)
				default:
					e.missing[p.addr] = fmt.Sprintf("serves %d other TXT value(s)", len(a.values))
				}
			}
		}
		next := now.Add(t.maxPollInterval())
		for _, e := range pending {
			select {
			case <-e.done:
				continue
			default:
			}
			if len(e.missing) == 0 {
				e.finish(nil)
				continue
			}
			if !now.Before(e.deadline) {
				e.finish(t.timeoutError(e))
				continue
			}
			if asked[e] {
				e.next = now.Add(e.interval)
				e.interval = min(2*e.interval, t.maxPollInterval())
			}
			next = minTime(next, minTime(e.next, e.deadline))
		}
		t.mu.Unlock()

		timer := time.NewTimer(time.Until(next))
		select {
		case <-timer.C:
		case <-t.wake:
			timer.Stop()
		}
	}
}

type answer struct {
	values []string
	err    error
}

// maxParallelQueries bounds the queries of one round: a wave of hundreds
// of names must not look like a flood to the nameservers.
const maxParallelQueries = 32

func (t *tracker) ask(due map[probe][]*entry, timeout time.Duration) map[probe]answer {
	out := make(map[probe]answer, len(due))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelQueries)
	for p := range due {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
			defer cancel()
			values, err := QueryTXT(ctx, p.addr, p.name, timeout)
			mu.Lock()
			out[p] = answer{values, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (t *tracker) timeoutError(e *entry) error {
	var lacking []string
	for _, ns := range e.servers {
		if why, ok := e.missing[ns.Addr]; ok {
			lacking = append(lacking, fmt.Sprintf("%s (%s): %s", strings.TrimSuffix(ns.Name, "."), ns.Addr, why))
		}
	}
	slices.Sort(lacking)
	timeout := t.s.PropagationTimeout
	if timeout <= 0 {
		timeout = DefaultPropagationTimeout
	}
	return fmt.Errorf("%w: TXT %s (zone %s) still missing after %s at %s; raise [dns01] propagation_timeout if the provider publishes slowly",
		ErrPropagation, e.rec.FQDN, e.rec.Zone, timeout, strings.Join(lacking, "; "))
}

// logProgressLocked logs "waiting for N of M TXT records at K nameservers"
// every ProgressInterval while records propagate.
func (t *tracker) logProgressLocked(now time.Time) {
	every := t.s.ProgressInterval
	if every <= 0 {
		every = DefaultProgressInterval
	}
	if now.Sub(t.lastLog) < every {
		return
	}
	t.lastLog = now
	waiting, total := 0, len(t.entries)
	servers := make(map[string]bool)
	for _, e := range t.entries {
		select {
		case <-e.done:
			continue
		default:
		}
		waiting++
		for addr := range e.missing {
			servers[addr] = true
		}
	}
	t.s.Logger.Info(fmt.Sprintf("waiting for %d of %d TXT records at %d nameservers", waiting, total, len(servers)),
		"waiting", waiting, "total", total, "nameservers", len(servers))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
