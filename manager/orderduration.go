package manager

// The observed duration of orders, which renewals start ahead of their
// latest time by (certfleet.RenewalAllowance).

import (
	"slices"
	"sync"
	"time"
)

// orderSamples is how many of a CA's latest orders count: the longest of
// them is the observation, so one fast order does not hide the slow ones
// and one slow order is forgotten after this many others.
const orderSamples = 16

// orderTimes keeps the durations of each CA's latest issued orders.
type orderTimes struct {
	mu  sync.Mutex                 // guards cas
	cas map[string][]time.Duration // CA → its latest orderSamples durations, oldest first
}

// orderTook records that an order at ca took d, from the job's claim to
// the certificate archived.
func (m *Manager) orderTook(ca string, d time.Duration) {
	m.orders.mu.Lock()
	defer m.orders.mu.Unlock()
	if m.orders.cas == nil {
		m.orders.cas = make(map[string][]time.Duration)
	}
	s := append(m.orders.cas[ca], d)
	if len(s) > orderSamples {
		s = s[len(s)-orderSamples:]
	}
	m.orders.cas[ca] = s
}

// orderDuration returns how long orders at ca take: the longest of its
// latest orderSamples, 0 before the first.
func (m *Manager) orderDuration(ca string) time.Duration {
	m.orders.mu.Lock()
	defer m.orders.mu.Unlock()
	if s := m.orders.cas[ca]; len(s) > 0 {
		return slices.Max(s)
	}
	return 0
}
