package manager

import (
	"testing"
	"time"
)

// TestUntilDue guards issue 16's scheduler lateness: a job due in less
// than minIdle was slept past (up to a second late, 0.017 of a 1-minute
// certificate's lifetime), so renewals placed at their latest start
// completed after 80%.
func TestUntilDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &Manager{Now: func() time.Time { return now }, PollInterval: 30 * time.Second}
	m.init()
	tests := []struct {
		name string
		at   time.Time
		want time.Duration
	}{
		{"due in 300 ms", now.Add(300 * time.Millisecond), 300 * time.Millisecond},
		{"due in 1 ms", now.Add(time.Millisecond), time.Millisecond},
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
