package config

import (
	"net"
	"time"
)

var apiKeys = []string{"listen", "url_listen", "tls_certificate", "pack_size", "pack_delay", "max_connections_per_ip"}

// DefaultPackDelay is [api] pack_delay's default. Ours: a control panel's
// burst (a customer adding names one request each, a migration script)
// arrives within a second or so, and a few seconds more are little next
// to the order's own validation; a longer wait is for the operator to
// choose.
const DefaultPackDelay = 3 * time.Second

// API configures the HTTP API ([api]). Absent or with listen = "" the API
// is not served.
type API struct {
	// Listen is the address of the API (bearer tokens), "" when off.
	Listen string
	// URLListen is the address of the listener for consumers that carry
	// their credential in the URL (Bud, Caddy); "" when off. Bind it to
	// loopback or a private address.
	URLListen string
	// TLSCertificate names a [[certificate]] whose current certificate the
	// API serves TLS with (reloaded as it renews). "" serves plain HTTP,
	// allowed only on loopback addresses.
	TLSCertificate string
	// PackSize is the lumping policy: 1 gives each requested name its own
	// certificate; N packs up to N names of the same account into one.
	// 0 (the default) is the same as 1.
	PackSize int
	// PackDelay (pack_delay) is how long the requests for a certificate
	// (a new pack, names added to or withdrawn from one) collect before
	// its order, counted from the first not yet ordered: requests within
	// it share one order, and a burst of changes re-packs once.
	// DefaultPackDelay when the key is absent; "0s" orders at once.
	PackDelay time.Duration
	// MaxConnsPerIP bounds the connections one client address may hold
	// open on each API listener (max_connections_per_ip; see apilimits.go).
	// 0: connlimit.DefaultPerIP.
	MaxConnsPerIP int
}

func (d *decoder) api(top *table, cfg *Config) {
	t := d.subtable(top, "api")
	if t == nil {
		return
	}
	defer d.unknown(t, apiKeys)
	addr := func(key string) string {
		s, p, ok := d.str(t, key)
		if !ok || s == "" {
			return ""
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			d.problemf(p, "%q is not a listen address; use host:port, as in \"127.0.0.1:8555\", or \"\" to disable", s)
		}
		return s
	}
	cfg.API.Listen = addr("listen")
	cfg.API.URLListen = addr("url_listen")
	if s, p, ok := d.str(t, "tls_certificate"); ok && s != "" {
		cfg.API.TLSCertificate = s
		defer func() {
			if _, ok := cfg.Certificate(s); !ok {
				d.problemf(p, "no [[certificate]] is named %q", s)
			}
		}()
	}
	if v, p, ok := d.get(t, "pack_size"); ok {
		n, isInt := v.(int64)
		switch {
		case !isInt:
			d.problemf(p, "must be an integer, not %s", typeName(v))
		case n < 1 || n > 100:
			d.problemf(p, "%d is out of range; a certificate holds 1 to 100 names", n)
		default:
			cfg.API.PackSize = int(n)
		}
	}
	cfg.API.PackDelay = DefaultPackDelay
	if s, p, ok := d.str(t, "pack_delay"); ok {
		if v := d.duration(p, s); v < 0 || v > time.Hour {
			d.problemf(p, "%q: give a duration from \"0s\" (order at once) to \"1h\", as in \"3s\"", s)
		} else {
			cfg.API.PackDelay = v
		}
	}
	d.apiLimits(t, cfg)
	if cfg.API.TLSCertificate == "" {
		for _, key := range []string{"listen", "url_listen"} {
			a := cfg.API.Listen
			if key == "url_listen" {
				a = cfg.API.URLListen
			}
			if a != "" && !loopback(a) {
				_, p, _ := d.str(t, key)
				d.problemf(p, "%q is not a loopback address: the API serves plain HTTP only on loopback; set tls_certificate to serve it over TLS", a)
			}
		}
	}
}

// loopback reports whether a listen address is on loopback.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
