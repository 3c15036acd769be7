package pebbleca

// WithAPIAddr returns cfg with the ACME API listening on addr, so that a
// test can start a CA on the port another one just freed.
func WithAPIAddr(cfg Config, addr string) Config {
	cfg.apiAddr = addr
	return cfg
}
