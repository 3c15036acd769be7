package config

// [[certificate]]: each certificate's spec, where it is written and where it
// is served, and the checks across certificates (names, output paths).

import (
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
)

var certKeys = []string{"name", "identifiers", "key_types", "challenge", "webroot", "dns_provider", "profile", "account",
	"renew_before", "renew_after", "reuse_key", "self_test", "output_dir", "owner", "group", "key_mode", "commands", "endpoints", "copy", "prepare", "prepare_helpers", "cleanup"}

var profileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (d *decoder) certificates(top *table, cfg *Config, defs certDefaults) {
	v, p, ok := d.get(top, "certificate")
	if !ok {
		return
	}
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be an array of tables: write each certificate under its own [[certificate]] header")
		return
	}
	type seen struct {
		index int
		line  int
	}
	names := make(map[string]seen)
	dirs := make(map[string]seen)
	routes := make(map[string]dnsRoute)
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s", typeName(e))
			continue
		}
		t := newTable(m, p.index(i))
		cert, ok := d.certificate(t, cfg, defs)
		if !ok {
			continue
		}
		name := cert.Spec.Name
		if prev, dup := names[strings.ToLower(name)]; dup {
			np := t.p.key("name")
			how := ""
			if _, set := t.m["name"]; !set {
				how = " (the name defaults to the first identifier; set name to tell them apart)"
			}
			d.problemf(np, "certificate name %q is already used by certificate[%d] at line %d%s", name, prev.index, prev.line, how)
			continue
		}
		if !d.dnsRouteOK(routes, t, cert, i) {
			continue
		}
		names[strings.ToLower(name)] = seen{i, d.lineOf(t.p)}
		if dir := cert.Output.Dir; dir != "" {
			if prev, dup := dirs[dir]; dup {
				d.problemf(t.p.key("output_dir"), "%s is already the output directory of certificate[%d] at line %d", dir, prev.index, prev.line)
				continue
			}
			dirs[dir] = seen{i, d.lineOf(t.p)}
		}
		for _, cp := range cert.CopyPaths() {
			if prev, dup := dirs[cp.Path]; dup {
				d.problemf(t.p.key("copy"), "copy path %s is already written by certificate[%d] at line %d (use {name} in the path of a [defaults] copy)", cp.Path, prev.index, prev.line)
			}
			dirs[cp.Path] = seen{i, d.lineOf(t.p)}
		}
		cfg.Certificates = append(cfg.Certificates, cert)
		d.notePositions(cfg, t) // for CheckHost (host.go)
	}
}

// certificate decodes one [[certificate]]; ok is false when it had problems.
func (d *decoder) certificate(t *table, cfg *Config, defs certDefaults) (Certificate, bool) {
	start := d.mark()
	defer d.unknown(t, certKeys)
	spec := certfleet.CertificateSpec{
		Source:      certfleet.SourceConfig,
		KeyTypes:    defs.keyTypes,
		Challenge:   defs.challenge,
		RenewBefore: cfg.Renewal.RenewBefore,
		RenewAfter:  cfg.Renewal.RenewAfter,
	}
	cert := Certificate{Output: Output{Owner: defs.owner, Group: defs.group, KeyMode: defs.keyMode, Commands: defs.commands, Copies: defs.copies},
		Prepare: defs.prepare, Helpers: defs.helpers, Cleanup: defs.cleanup}
	crossOK := defs.clean

	// Identifiers first: the name defaults to the first one.
	ids, idPaths, idsOK := d.identifiers(t)
	if kts, ok := d.keyTypes(t); ok {
		spec.KeyTypes = kts
	}
	ct, chalPath, chalSet := d.challenge(t)
	if chalSet {
		spec.Challenge = ct
	} else if _, present := t.m["challenge"]; present {
		crossOK = false
	}
	if crossOK { // the identifiers that parsed, even when others did not
		for j, id := range ids {
			if err := spec.Challenge.CanProve(id); err != nil {
				d.problemf(idPaths[j], "%v", err)
			}
		}
	}

	if s, p, ok := d.str(t, "name"); ok {
		if err := certfleet.ValidateName(s); err != nil {
			d.problemf(p, "%v", err)
		}
		spec.Name = s
	} else if _, present := t.m["name"]; !present && len(ids) > 0 && idsOK {
		spec.Name = defaultName(ids[0])
		if err := certfleet.ValidateName(spec.Name); err != nil {
			d.problemf(t.p.key("name"), "the name defaults to the first identifier, but %v; set name", err)
		}
	}

	webroot, wp, webrootSet := d.str(t, "webroot")
	if webrootSet && webroot != "" {
		cert.Webroot, _ = d.abs(wp, webroot)
		if spec.Challenge != certfleet.ChallengeWebroot && crossOK {
			d.problemf(wp, "webroot is only used with challenge = \"webroot\"; this certificate uses %s", spec.Challenge)
		}
	} else if spec.Challenge == certfleet.ChallengeWebroot {
		cert.Webroot = defs.webroot
	}
	if spec.Challenge == certfleet.ChallengeWebroot && cert.Webroot == "" && crossOK {
		p := wp
		if chalSet {
			p = chalPath
		}
		d.problemf(p, "challenge \"webroot\" needs webroot: the directory your web server serves /.well-known/acme-challenge/ from")
	}

	cert.DNSProvider = d.dnsProviderOf(t, cfg, defs, spec, crossOK && d.mark() == start)

	if s, p, ok := d.str(t, "profile"); ok && s != "" {
		if !profileRE.MatchString(s) {
			d.problemf(p, "%q is not a profile name (letters, digits, '.', '_' and '-')", s)
		}
		spec.Profile = s
	}
	if _, set := t.m["account"]; !set {
		if _, ok := cfg.Accounts[certfleet.DefaultAccount]; !ok && !d.caMissing {
			d.caMissing = true
			d.problemf(path{"ca", "directory"}, "required: certificates use the default account; set [ca] directory to a CA's URL, or letsencrypt, letsencrypt-staging or zerossl")
		}
	}
	if s, p, ok := d.str(t, "account"); ok {
		if _, known := cfg.Accounts[s]; !known {
			names := slices.Sorted(maps.Keys(cfg.Accounts))
			if len(names) == 0 {
				d.problemf(p, "unknown account %q: no accounts are configured ([ca] or [accounts.%s])", s, quoteKey(s))
			} else {
				d.problemf(p, "unknown account %q (configured: %s); add an [accounts.%s] table", s, strings.Join(names, ", "), quoteKey(s))
			}
		}
		if s != certfleet.DefaultAccount {
			spec.Account = s
		}
	}
	if s, p, ok := d.str(t, "renew_before"); ok {
		spec.RenewBefore = 0
		if s != "" {
			spec.RenewBefore = d.duration(p, s)
		}
	}
	if s, p, ok := d.str(t, "renew_after"); ok {
		spec.RenewAfter = 0
		if s != "" {
			spec.RenewAfter = d.duration(p, s)
		}
	}
	if v, p, ok := d.get(t, "reuse_key"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		spec.ReuseKey = b
	}
	if v, p, ok := d.get(t, "self_test"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		spec.NoSelfTest = !b // docs/readiness.md: for names only the CA can reach
	}

	if s, p, ok := d.str(t, "output_dir"); ok {
		if s != "" {
			cert.Output.Dir, _ = d.abs(p, s)
		}
	} else if defs.outputDir != "" && spec.Name != "" {
		cert.Output.Dir = filepath.Join(defs.outputDir, spec.Name)
	}
	if s, ok := d.principal(t, "owner"); ok {
		cert.Output.Owner = s
	}
	if s, ok := d.principal(t, "group"); ok {
		cert.Output.Group = s
	}
	if m, ok := d.keyMode(t); ok {
		cert.Output.KeyMode = m
	}
	if cmds, ok := d.commands(t); ok {
		cert.Output.Commands = cmds
	}
	if cps, ok := d.copies(t); ok {
		cert.Output.Copies = cps
	}
	if cmds, ok := d.commandsAt(t, "prepare"); ok {
		cert.Prepare = cmds
	}
	if hs, ok := d.helpers(t); ok {
		cert.Helpers = hs
	}
	if cmds, ok := d.commandsAt(t, "cleanup"); ok {
		cert.Cleanup = cmds
	}
	cert.Endpoints = d.endpoints(t, ids)

	if d.mark() != start || !defs.clean {
		return Certificate{}, false
	}
	// The identifiers were checked one by one above; ParseIdentifiers and
	// Validate are the root's word on the whole spec.
	values := make([]string, len(ids))
	for i, id := range ids {
		values[i] = id.Value
	}
	parsed, err := certfleet.ParseIdentifiers(values)
	if err != nil {
		d.problemf(t.p.key("identifiers"), "%v", err)
		return Certificate{}, false
	}
	spec.Identifiers = parsed
	if err := spec.Validate(); err != nil {
		d.problemf(t.p, "%v", err)
		return Certificate{}, false
	}
	spec.KeyTypes = slices.Clone(spec.KeyTypes) // not shared with [defaults]
	cert.Spec = spec
	cert.Output.Commands = cloneCommands(cert.Output.Commands)
	cert.Output.Copies = slices.Clone(cert.Output.Copies)
	cert.Prepare, cert.Cleanup = cloneCommands(cert.Prepare), cloneCommands(cert.Cleanup)
	cert.Helpers = cloneHelpers(cert.Helpers)
	if len(cert.Output.Copies) > 0 && len(spec.KeyTypes) > 1 {
		d.problemf(t.p.key("copy"), "copy needs a certificate with one key type (this one has %d): the copies of each would overwrite the other; split it into one certificate per key type", len(spec.KeyTypes))
		return Certificate{}, false
	}
	return cert, true
}

// identifiers parses the identifiers one by one, so that each bad one is
// reported on its own line.
func (d *decoder) identifiers(t *table) ([]certfleet.Identifier, []path, bool) {
	start := d.mark()
	list, paths, p, ok := d.strList(t, "identifiers")
	if !ok {
		if _, present := t.m["identifiers"]; !present {
			d.problemf(p, "required: the DNS names and IP addresses to certify, as in [\"example.org\", \"www.example.org\"]")
		}
		return nil, nil, false
	}
	switch {
	case d.mark() != start:
		return nil, nil, false
	case len(list) == 0:
		d.problemf(p, "empty: list the DNS names and IP addresses to certify")
		return nil, nil, false
	case len(list) > certfleet.MaxIdentifiers:
		d.problemf(p, "%d identifiers; a certificate may hold at most %d", len(list), certfleet.MaxIdentifiers)
		return nil, nil, false
	}
	ids := make([]certfleet.Identifier, 0, len(list))
	idPaths := make([]path, 0, len(list))
	first := make(map[certfleet.Identifier]int)
	for i, s := range list {
		id, err := certfleet.ParseIdentifier(s)
		if err != nil {
			d.problemf(paths[i], "%v", err)
			continue
		}
		if j, dup := first[id]; dup {
			if list[j] == s {
				d.problemf(paths[i], "%q is listed twice", s)
			} else {
				d.problemf(paths[i], "%q is the same name as %q", s, list[j])
			}
			continue
		}
		first[id] = i
		ids = append(ids, id)
		idPaths = append(idPaths, paths[i])
	}
	return ids, idPaths, d.mark() == start
}

// defaultName derives a certificate name from its first identifier. '_'
// never occurs in a valid DNS identifier, so "*.example.org" →
// "example.org_wildcard" cannot collide with a name derived from a real
// host, and neither can an IPv6 address with its ':' replaced.
func defaultName(id certfleet.Identifier) string {
	v := id.Value
	if rest, ok := strings.CutPrefix(v, "*."); ok {
		v = rest + "_wildcard"
	}
	return strings.ReplaceAll(v, ":", "_")
}

// endpoints parses where a certificate is served: "[protocol://]host[:port]"
// with protocol tls (default), smtp, imap, pop3 or postgres (STARTTLS and
// SSLRequest upgrades), or https, smtps, imaps, pop3s (TLS at once), the
// port defaulting to the protocol's. The SNI name is the certificate's first DNS
// identifier, which is what a client of the service would ask for.
func (d *decoder) endpoints(t *table, ids []certfleet.Identifier) []endpoint.Target {
	list, paths, _, ok := d.strList(t, "endpoints")
	if !ok {
		return nil
	}
	sni := ""
	for _, id := range ids {
		if id.Type == certfleet.IdentifierDNS && !id.IsWildcard() {
			sni = id.Value
			break
		}
	}
	var out []endpoint.Target
	for i, s := range list {
		proto, addr := "", s
		if p, rest, found := strings.Cut(s, "://"); found {
			proto, addr = p, rest
		}
		// Implicit-TLS schemes people write are TLS from the first byte,
		// each with its well-known port.
		implicit := map[string]string{"https": "443", "smtps": "465", "imaps": "993", "pop3s": "995"}
		if port, ok := implicit[strings.ToLower(proto)]; ok {
			proto = "tls"
			if _, _, err := net.SplitHostPort(addr); err != nil && addr != "" && !strings.ContainsAny(addr, "/?# ") {
				addr = net.JoinHostPort(strings.Trim(addr, "[]"), port)
			}
		}
		pr, err := endpoint.ParseProtocol(proto)
		if err != nil {
			d.problemf(paths[i], "%q: %v", s, err)
			continue
		}
		if addr == "" || strings.ContainsAny(addr, "/?# ") {
			d.problemf(paths[i], "%q: write [protocol://]host[:port], as in \"smtp://mx.example.org:25\" or \"lb1.example.org\"", s)
			continue
		}
		tgt, err := endpoint.Target{Address: addr, Protocol: pr, ServerName: sni}.Normalize()
		if err != nil {
			d.problemf(paths[i], "%q: %v", s, err)
			continue
		}
		out = append(out, tgt)
	}
	return out
}
