package config

// [webroots]: named web roots that certificates requested over the API may
// use with the webroot challenge (issue 12), since an API client cannot
// name a directory of this server.

import (
	"maps"
	"slices"

	"github.com/certfleet/certfleet"
)

// webroots decodes [webroots]: NAME = "directory".
func (d *decoder) webroots(top *table, cfg *Config) {
	t := d.subtable(top, "webroots")
	if t == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		s, p, ok := d.str(t, name)
		if !ok {
			continue
		}
		if certfleet.ValidateName(name) != nil {
			d.problemf(p, "web root name %s: use letters, digits, '.', '_' or '-', starting with a letter or digit", quoteKey(name))
			continue
		}
		if s == "" {
			d.problemf(p, "give the directory the web server serves /.well-known/acme-challenge/ from")
			continue
		}
		if dir, ok := d.abs(p, s); ok {
			if cfg.Webroots == nil {
				cfg.Webroots = make(map[string]string)
			}
			cfg.Webroots[name] = dir
		}
	}
}

// RespondsTo reports whether the built-in responder of ct (http-01 or
// tls-alpn-01) is to run: when a [[certificate]] of the file uses ct, and,
// when the API is served (names may come over it), when the file sets the
// responder's address ([http01] listen = "…"), whatever the certificates:
// that is how a set-up whose names all come over the API enables it. So a
// daemon without the API, or with the address left at its default (":80",
// ":443"), starts only what its certificates need, and never takes port 443
// from a web server it was not asked to. An address of "" disables it.
func (c *Config) RespondsTo(ct certfleet.ChallengeType) bool {
	api := c.API.Listen != ""
	switch ct {
	case certfleet.ChallengeHTTP01:
		return c.HTTP01Listen != "" && (c.Uses(ct) || api && c.HTTP01ListenSet)
	case certfleet.ChallengeTLSALPN01:
		return c.TLSALPN01Listen != "" && (c.Uses(ct) || api && c.TLSALPN01ListenSet)
	}
	return false
}
