package manager

import (
	"testing"
	"time"
)

// TestUntilDue guards issue 16's scheduler lateness: a job due in less
// than minIdle was slept past (up to a second late, 0.017 of a 1-minute
// certificate's lifetime), so renewals placed at their latest start
// completed after 80%.
// TestStoreRetry guards issue 16's idle scheduler after a database
// restart: a failed look at the store was retried after the per-job
// backoff (a minute, capped at PollInterval, 30 s), so an instance sat
// idle for up to 30 s after the database was back (the combined failover
// run, BENCHMARKS §13). It retries within seconds.
func TestStoreRetry(t *testing.T) {
	m := &Manager{PollInterval: 30 * time.Second}
	m.init()
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, 250 * time.Millisecond},
		{2, 500 * time.Millisecond},
		{3, time.Second},
		{4, 2 * time.Second},
		{100, 2 * time.Second},
	} {
		if got := m.storeRetry(tc.failures); got != tc.want {
			t.Errorf("storeRetry(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
	m = &Manager{PollInterval: time.Second}
	m.init()
	if got := m.storeRetry(10); got != time.Second {
		t.Errorf("storeRetry with PollInterval 1s = %v, want 1s", got)
	}
}

func TestUntilDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &Manager{Now: func() time.Time { return now }, PollInterval: 30 * time.Second, Lease: 3 * time.Second}
	m.init()
	tests := []struct {
		name string
		at   time.Time
		want time.Duration
	}{
		{"due in 300 ms", now.Add(300 * time.Millisecond), 300 * time.Millisecond},
		{"due in 1 ms", now.Add(time.Millisecond), time.Millisecond},
		{"within a lease: perhaps a lease's end", now.Add(2 * time.Second), minIdle},
		{"due in 5 s", now.Add(5 * time.Second), 5 * time.Second},
		{"beyond the poll interval", now.Add(time.Hour), 30 * time.Second},
		{"already past: claimed elsewhere", now.Add(-time.Second), minIdle},
		{"now", now, minIdle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.untilDue(tc.at); got != tc.want {
				t.Errorf("untilDue = %v, want %v", got, tc.want)
			}
		})
	}
}
