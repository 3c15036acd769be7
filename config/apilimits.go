package config

// maxConnsPerIPLimit is the largest max_connections_per_ip accepted: a
// reverse proxy in front of every agent of a large fleet, each holding one
// long-poll per certificate, stays below it.
const maxConnsPerIPLimit = 1000000

// apiLimits decodes [api] max_connections_per_ip: how many connections
// one client address may hold open on each API listener (slowloris, issue
// 17). The default (connlimit.DefaultPerIP, 256) suits clients that reach
// certfleet directly; behind a reverse proxy every client shares the
// proxy's address, so raise it there.
func (d *decoder) apiLimits(t *table, cfg *Config) {
	v, p, ok := d.get(t, "max_connections_per_ip")
	if !ok {
		return
	}
	n, isInt := v.(int64)
	switch {
	case !isInt:
		d.problemf(p, "must be an integer, not %s", typeName(v))
	case n < 1 || n > maxConnsPerIPLimit:
		d.problemf(p, "%d is out of range: give 1 to %d connections per client address (behind a reverse proxy every client shares its address: raise it there)", n, maxConnsPerIPLimit)
	default:
		cfg.API.MaxConnsPerIP = int(n)
	}
}
