package config

import (
	"net"
	"time"
)

var metricsKeys = []string{"listen", "readiness_interval"}

// DefaultReadinessInterval is how often serve re-evaluates short-lived
// readiness for its log when nobody scrapes: often enough that a 24-hour
// certificate's limit (2.4 h) is noticed long before it matters, rarely
// enough that two store queries a minute cost nothing.
const DefaultReadinessInterval = time.Minute

// Metrics configures the Prometheus endpoint ([metrics]). /metrics is
// always served on [api] listen, to tokens with read-certs for every name
// ("*"), because the metrics name every certificate. Listen adds a
// separate listener without authentication, Prometheus's usual way: bind it
// to loopback or a network only the scraper reaches.
type Metrics struct {
	// Listen is the address of the unauthenticated metrics listener, ""
	// (the default) for none.
	Listen string
	// ReadinessInterval is how often serve checks short-lived readiness
	// for its log (each scrape checks too). Zero (the default) means
	// DefaultReadinessInterval.
	ReadinessInterval time.Duration
}

func (d *decoder) metrics(top *table, cfg *Config) {
	t := d.subtable(top, "metrics")
	if t == nil {
		return
	}
	defer d.unknown(t, metricsKeys)
	if s, p, ok := d.str(t, "listen"); ok && s != "" {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			d.problemf(p, "%q is not a listen address; use host:port, as in \"127.0.0.1:9464\", or \"\" for none", s)
		} else if s == cfg.API.Listen || s == cfg.API.URLListen {
			d.problemf(p, "%q is also [api]'s address; /metrics is served there already (with a token): pick another port or \"\"", s)
		}
		cfg.Metrics.Listen = s
	}
	if s, p, ok := d.str(t, "readiness_interval"); ok {
		mark := d.mark()
		iv := d.duration(p, s)
		switch {
		case d.mark() != mark: // reported by duration
		case iv < time.Second:
			d.problemf(p, "%q is too short; use at least \"1s\"", s)
		default:
			cfg.Metrics.ReadinessInterval = iv
		}
	}
}
