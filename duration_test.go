package certfleet_test

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet"
)

// TestFormatDuration: what the API shows of a renewal margin reads back
// as the same duration.
func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{30 * 24 * time.Hour, "30d"},
		{36 * time.Hour, "36h0m0s"},
		{90 * time.Minute, "1h30m0s"},
		{1500 * time.Millisecond, "1.5s"},
	}
	for _, tc := range tests {
		got := certfleet.FormatDuration(tc.d)
		if got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
		back, err := certfleet.ParseDuration(got)
		if err != nil || back != tc.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, tc.d)
		}
	}
}
