package certfleet

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// ParseDuration parses a non-negative duration in Go syntax ("12h", "1h30m")
// extended with a "d" unit of 24 hours ("30d", "1d12h"), since renewal
// margins are usually counted in days. "0" is zero. The config file and the
// API both read durations with it.
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q: use numbers with units, as in 30d, 12h or 1h30m (units d, h, m, s)", s)
	if s == "" {
		return 0, bad
	}
	if s == "0" {
		return 0, nil
	}
	var total time.Duration
	for rest := s; rest != ""; {
		j := 0
		for j < len(rest) && (rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		k := j
		for k < len(rest) && !(rest[k] >= '0' && rest[k] <= '9' || rest[k] == '.') {
			k++
		}
		num, unit := rest[:j], rest[j:k]
		rest = rest[k:]
		if num == "" || unit == "" {
			return 0, bad
		}
		var d time.Duration
		if unit == "d" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, bad
			}
			h := f * 24 * float64(time.Hour)
			if h >= math.MaxInt64 {
				return 0, fmt.Errorf("duration %q is too long", s)
			}
			d = time.Duration(h)
		} else {
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, bad
			}
		}
		if total+d < total {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		total += d
	}
	return total, nil
}

// FormatDuration writes d so that ParseDuration reads it back: whole days
// as "30d", anything else in Go syntax ("12h0m0s", "1h30m0s"); "0" for
// zero. The API shows renewal margins with it.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0"
	case d > 0 && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
