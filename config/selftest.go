package config

import (
	"net"
	"strconv"
	"time"
)

// selfTestKeys are the keys of [self_test].
var selfTestKeys = []string{"enabled", "resolvers", "retest_min", "retest_max", "http_port", "tls_port", "timeout", "persist_warning"}

// SelfTest is [self_test]: the test of each name before it is ordered
// (issue 14, docs/readiness.md). A certificate turns it off for itself
// with self_test = false.
type SelfTest struct {
	// Enabled: names are tested before they are ordered (issue 14: "self-
	// test before any order"). On by default, with or without a
	// [self_test] table; enabled = false turns it off for every
	// certificate, self_test = false of a [[certificate]] for its own
	// names (names only the CA can reach, split-horizon DNS).
	Enabled bool
	// Resolvers are the DNS resolvers names are resolved through, as the
	// CA would ("host" or "host:port"). Default: the system's.
	Resolvers []string
	// RetestMin and RetestMax bound a waiting name's re-test backoff: the
	// first after RetestMin, doubling up to RetestMax. Defaults 30s, 1h.
	RetestMin, RetestMax time.Duration
	// HTTPPort and TLSPort are the ports probed where a CA uses 80 and
	// 443 (set only where the CA validates on other ports, as tests'
	// Pebble does). Defaults 80, 443.
	HTTPPort, TLSPort int
	// Timeout bounds one name's test. Default 10s.
	Timeout time.Duration
	// PersistWarning: how long before a dns-persist-01 record's
	// persistUntil a warning is logged. Default 30 days.
	PersistWarning time.Duration
}

// selfTest decodes [self_test].
func (d *decoder) selfTest(top *table, cfg *Config) {
	st := &cfg.SelfTest
	st.Enabled = true
	t := d.subtable(top, "self_test")
	if t == nil {
		return
	}
	if v, p, ok := d.get(t, "enabled"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		st.Enabled = b
	}
	if list, paths, _, ok := d.strList(t, "resolvers"); ok {
		for i, s := range list {
			host := s
			if h, port, err := net.SplitHostPort(s); err == nil {
				host = h
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					d.problemf(paths[i], "%q: the port must be 1 to 65535", s)
					continue
				}
			}
			if net.ParseIP(host) == nil {
				d.problemf(paths[i], "%q: give the resolver's IP address (and port), as in \"9.9.9.9\" or \"127.0.0.1:5353\"", s)
				continue
			}
			st.Resolvers = append(st.Resolvers, s)
		}
	}
	for _, k := range []struct {
		key string
		dst *time.Duration
	}{{"retest_min", &st.RetestMin}, {"retest_max", &st.RetestMax}, {"timeout", &st.Timeout}, {"persist_warning", &st.PersistWarning}} {
		if s, p, ok := d.str(t, k.key); ok {
			if v := d.duration(p, s); v < 0 || (v == 0 && s != "") {
				d.problemf(p, "%q: give a positive duration, as in \"30s\" or \"1h\"", s)
			} else {
				*k.dst = v
			}
		}
	}
	if st.RetestMin > 0 && st.RetestMax > 0 && st.RetestMax < st.RetestMin {
		_, p, _ := d.get(t, "retest_max")
		d.problemf(p, "retest_max (%s) is shorter than retest_min (%s): make it at least as long", st.RetestMax, st.RetestMin)
	}
	for _, k := range []struct {
		key string
		dst *int
	}{{"http_port", &st.HTTPPort}, {"tls_port", &st.TLSPort}} {
		if v, p, ok := d.get(t, k.key); ok {
			n, isInt := v.(int64)
			if !isInt || n < 1 || n > 65535 {
				d.problemf(p, "must be a port number from 1 to 65535, not %v", v)
				continue
			}
			*k.dst = int(n)
		}
	}
	d.unknown(t, selfTestKeys)
}
