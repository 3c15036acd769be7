package config

import (
	"time"

	"github.com/certfleet/certfleet"
)

// ParseDuration is certfleet.ParseDuration: a Go duration with a "d" unit
// of 24 hours ("30d", "1d12h"), as every duration of the file is written.
func ParseDuration(s string) (time.Duration, error) { return certfleet.ParseDuration(s) }
