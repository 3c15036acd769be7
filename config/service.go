package config

// How the service itself runs: state (the store), [log], the built-in
// responders' [http01] and [tlsalpn01] listen addresses, and [renewal].

import (
	"net"
	"net/url"
	"strings"
)

var (
	logKeys     = []string{"level", "format"}
	listenKeys  = []string{"listen"}
	renewalKeys = []string{"concurrency", "renew_before", "renew_after"}
)

func (d *decoder) state(p path, s string) string {
	lower := strings.ToLower(s)
	switch {
	case s == "":
		d.problemf(p, "must not be empty: give the SQLite database file (or a postgres:// URL)")
	case strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://"):
		// Not quoted in the problem: the URL may hold a password.
		if _, err := url.Parse(s); err != nil {
			d.problemf(p, "not a valid PostgreSQL URL")
		}
		scheme, rest, _ := strings.Cut(s, "://")
		return strings.ToLower(scheme) + "://" + rest
	case strings.Contains(s, "://"):
		d.problemf(p, "unsupported store URL; give a SQLite file path or a postgres:// URL")
	default:
		if a, ok := d.abs(p, s); ok {
			return a
		}
	}
	return ""
}

func (d *decoder) log(t *table, l *Log) {
	if s, p, ok := d.str(t, "level"); ok {
		if err := l.Level.UnmarshalText([]byte(s)); err != nil {
			d.problemf(p, "unknown level %q (use debug, info, warn or error)", s)
		}
	}
	if s, p, ok := d.str(t, "format"); ok {
		if s != "text" && s != "json" {
			d.problemf(p, "unknown format %q (use text or json)", s)
		}
		l.Format = s
	}
	d.unknown(t, logKeys)
}

// listen decodes [KEY] listen, and reports whether the file sets it.
func (d *decoder) listen(top *table, key, def string) (string, bool) {
	t := d.subtable(top, key)
	if t == nil {
		return def, false
	}
	defer d.unknown(t, listenKeys)
	s, p, ok := d.str(t, "listen")
	if !ok {
		return def, false
	}
	if s == "" {
		return "", true
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		d.problemf(p, "%q is not a listen address; use host:port or :port, as in %q, or \"\" to disable the responder", s, def)
	}
	return s, true
}

func (d *decoder) renewal(t *table, r *Renewal) {
	if v, p, ok := d.get(t, "concurrency"); ok {
		n, isInt := v.(int64)
		switch {
		case !isInt:
			d.problemf(p, "must be an integer, not %s", typeName(v))
		case n < 1 || n > 1000:
			d.problemf(p, "%d is out of range; allow 1 to 1000 orders at once", n)
		default:
			r.Concurrency = int(n)
		}
	}
	if s, p, ok := d.str(t, "renew_before"); ok && s != "" {
		r.RenewBefore = d.duration(p, s)
	}
	if s, p, ok := d.str(t, "renew_after"); ok && s != "" {
		r.RenewAfter = d.duration(p, s)
	}
	d.unknown(t, renewalKeys)
}
