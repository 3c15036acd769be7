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
// tls-alpn-01) is to run: when its listen address is set explicitly in the
// file ([http01] listen = "…"), whatever the certificates, which is how a
// set-up whose names all come over the API enables it; and, at its default
// address (":80", ":443"), when a [[certificate]] of the file uses ct, so
// that a daemon never takes port 443 from a web server it was not asked
// to. An address of "" disables it.
func (c *Config) RespondsTo(ct certfleet.ChallengeType) bool {
	switch ct {
	case certfleet.ChallengeHTTP01:
		return c.HTTP01Listen != "" && (c.HTTP01ListenSet || c.Uses(ct))
	case certfleet.ChallengeTLSALPN01:
		return c.TLSALPN01Listen != "" && (c.TLSALPN01ListenSet || c.Uses(ct))
	}
	return false
}
