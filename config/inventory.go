package config

// [inventory.NAME]: sources of certificates that live outside this file — a
// PostgreSQL table or view, an LDAP directory, a directory of TOML files
// (issue 18) — and the decoding of what they declare, with the same rules
// and messages as [[certificate]].

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/certfleet/certfleet"
)

// Inventory source types (the type key of [inventory.NAME]).
const (
	InventoryTypePostgres  = "postgres"
	InventoryTypeLDAP      = "ldap"
	InventoryTypeDirectory = "directory"
)

// Defaults of [inventory.NAME].
const (
	// DefaultInventoryInterval is how often a source is re-read in full,
	// whatever its notifications say: a LISTEN connection or an LDAP
	// persistent search that silently lost events is caught up within it.
	DefaultInventoryInterval = 5 * time.Minute
	// DefaultInventoryGrace is how long a certificate a source no longer
	// declares stays in force before it is withdrawn: a day covers an
	// entry deleted by mistake and restored the next morning, or an LDAP
	// migration that empties a subtree for an hour.
	DefaultInventoryGrace = 24 * time.Hour
	// DefaultInventoryChannel is the LISTEN/NOTIFY channel of a postgres
	// source; the shipped trigger notifies it.
	DefaultInventoryChannel = "certfleet_inventory"
	// DefaultInventoryPollInterval is how often a directory source looks
	// at its files' sizes and modification times: a stat per file, cheap
	// enough to make an edited file count within seconds.
	DefaultInventoryPollInterval = 2 * time.Second
	// DefaultLDAPFilter matches every entry below the base.
	DefaultLDAPFilter = "(objectClass=*)"
)

// InventoryRowKeys are the certificate keys a source's rows, entries or
// files may set, per certificate. The others of [[certificate]] (output_dir,
// owner, group, key_mode, commands, copy, prepare, cleanup, webroot,
// endpoints) choose files written and commands run on the certfleet host:
// only the operator's config file sets them, in [inventory.NAME.defaults].
var InventoryRowKeys = []string{"name", "identifiers", "key_types", "challenge", "dns_provider", "profile", "account", "renew_before", "renew_after", "reuse_key"}

var inventoryKeys = []string{"type", "interval", "grace", "defaults",
	"dsn", "password", "query", "channel", // postgres
	"url", "bind_dn", "base", "filter", "scope", "attributes", "persist", "trusted_roots", // ldap (and password)
	"dir", "poll_interval"} // directory

var (
	inventoryNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	pgChannelRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// Inventory is one [inventory.NAME] source.
type Inventory struct {
	// Name is the source's name; its certificates are synced as spec
	// source certfleet.InventorySource(Name).
	Name string
	// Type is InventoryTypePostgres, InventoryTypeLDAP or InventoryTypeDirectory.
	Type string
	// Interval is how often the source is re-read in full. Default
	// DefaultInventoryInterval.
	Interval time.Duration
	// Grace is how long a certificate the source no longer declares stays
	// before it is withdrawn (never revoked). Default DefaultInventoryGrace.
	Grace time.Duration
	// Postgres, LDAP and Dir configure the source of their Type.
	Postgres InventoryPostgres
	LDAP     InventoryLDAP
	Dir      InventoryDir

	// defs are [defaults] with [inventory.NAME.defaults] over them: what
	// the source's certificates inherit.
	defs certDefaults
}

// InventoryPostgres is a source that reads a table or view the operator
// owns with Query, woken by LISTEN/NOTIFY on Channel.
type InventoryPostgres struct {
	// DSN is the database's postgres:// URL. Required.
	DSN string
	// Password, when set, is the password to connect with (a secret:
	// "store:NAME" reads it from the store); else the DSN's or libpq's
	// usual sources (PGPASSFILE).
	Password string
	// Query returns one row per certificate, its columns named after
	// InventoryRowKeys (SELECT domain AS name, ARRAY[...] AS identifiers).
	// Required.
	Query string
	// Channel is the channel LISTENed to; "" reads on the schedule only.
	// Default DefaultInventoryChannel.
	Channel string
}

// InventoryLDAP is a source that searches an LDAP directory and maps
// attributes of the entries found onto certificate keys.
type InventoryLDAP struct {
	// URL is ldap://HOST[:PORT] or ldaps://HOST[:PORT]. Required.
	URL string
	// BindDN and Password bind before searching (Password is a secret:
	// "store:NAME"); both empty binds anonymously.
	BindDN, Password string
	// Base is the search base DN. Required.
	Base string
	// Filter selects the entries, as in (letsencrypt=TRUE). Default
	// DefaultLDAPFilter.
	Filter string
	// Scope is "sub" (default: the whole subtree), "one" or "base".
	Scope string
	// Attributes maps certificate keys (InventoryRowKeys) to the LDAP
	// attributes holding them, as in identifiers → associatedDomain.
	// identifiers is required.
	Attributes map[string]string
	// Persist uses the server's content synchronization (RFC 4533
	// refreshAndPersist, slapd's syncprov overlay) to learn of changes at
	// once, when the server offers it. Default true.
	Persist bool
	// TrustedRoots is a PEM file of roots to trust for ldaps://, or ""
	// for the system roots.
	TrustedRoots string
}

// InventoryDir is a source that reads a directory of TOML files (conf.d),
// each a list of [[certificate]] tables with InventoryRowKeys.
type InventoryDir struct {
	// Path is the directory, absolute. Required.
	Path string
	// PollInterval is how often the files' sizes and modification times
	// are compared with the last read. Default DefaultInventoryPollInterval.
	PollInterval time.Duration
}

// InventorySource returns the [inventory.NAME] source named name.
func (c *Config) InventorySource(name string) (Inventory, bool) {
	for _, inv := range c.Inventory {
		if inv.Name == name {
			return inv, true
		}
	}
	return Inventory{}, false
}

// SameInventory reports whether a and b read the same sources the same
// way: what a reload cannot change without a restart. The defaults their
// certificates inherit may differ.
func SameInventory(a, b []Inventory) bool {
	strip := func(in []Inventory) []Inventory {
		out := slices.Clone(in)
		for i := range out {
			out[i].defs = certDefaults{}
		}
		return out
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

func (d *decoder) inventory(top *table, cfg *Config, global certDefaults) {
	t := d.subtable(top, "inventory")
	if t == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		it := d.subtable(t, name)
		if it == nil {
			continue
		}
		if !inventoryNameRE.MatchString(name) {
			d.problemf(it.p, "inventory source name %s: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", quoteKey(name))
			continue
		}
		cfg.Inventory = append(cfg.Inventory, d.inventorySource(it, name, global))
	}
}

func (d *decoder) inventorySource(t *table, name string, global certDefaults) Inventory {
	defer d.unknown(t, inventoryKeys)
	inv := Inventory{Name: name, Interval: DefaultInventoryInterval, Grace: DefaultInventoryGrace}
	typ, tp, ok := d.str(t, "type")
	switch {
	case !ok:
		if _, present := t.m["type"]; !present {
			d.problemf(t.p.key("type"), "required: %s, %s or %s", InventoryTypePostgres, InventoryTypeLDAP, InventoryTypeDirectory)
		}
	case typ != InventoryTypePostgres && typ != InventoryTypeLDAP && typ != InventoryTypeDirectory:
		d.problemf(tp, "unknown inventory type %q: use %s, %s or %s", typ, InventoryTypePostgres, InventoryTypeLDAP, InventoryTypeDirectory)
	}
	inv.Type = typ
	if s, p, ok := d.str(t, "interval"); ok {
		if inv.Interval = d.duration(p, s); inv.Interval <= 0 {
			d.problemf(p, "must be longer than 0 (how often the source is re-read in full)")
		}
	}
	if s, p, ok := d.str(t, "grace"); ok {
		inv.Grace = d.duration(p, s)
	}
	inv.defs = d.defaultsOver(global, d.subtable(t, "defaults"))
	if inv.defs.challenge == certfleet.ChallengeWebroot {
		d.problemf(t.p.key("defaults").key("challenge"), "%s", webrootRefusal)
	}
	switch typ {
	case InventoryTypePostgres:
		inv.Postgres = d.inventoryPostgres(t)
	case InventoryTypeLDAP:
		inv.LDAP = d.inventoryLDAP(t)
	case InventoryTypeDirectory:
		inv.Dir = d.inventoryDir(t)
	default:
		return inv
	}
	// Keys of the other types are refused, so that a mistyped type is
	// seen at once rather than as a source that reads nothing.
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		if t.used[k] {
			continue
		}
		for _, other := range []string{InventoryTypePostgres, InventoryTypeLDAP, InventoryTypeDirectory} {
			if slices.Contains(inventoryTypeKeys[other], k) {
				t.used[k] = true
				d.problemf(t.p.key(k), "%s is a key of type %q sources; this one is type %q", k, other, typ)
				break
			}
		}
	}
	return inv
}

// inventoryTypeKeys are the keys of each type of source.
var inventoryTypeKeys = map[string][]string{
	InventoryTypePostgres:  {"dsn", "password", "query", "channel"},
	InventoryTypeLDAP:      {"url", "bind_dn", "password", "base", "filter", "scope", "attributes", "persist", "trusted_roots"},
	InventoryTypeDirectory: {"dir", "poll_interval"},
}

func (d *decoder) requiredStr(t *table, key, what string) (string, path) {
	s, p, ok := d.str(t, key)
	if !ok {
		if _, present := t.m[key]; !present {
			d.problemf(p, "required: %s", what)
		}
	} else if strings.TrimSpace(s) == "" {
		d.problemf(p, "empty: %s", what)
	}
	return s, p
}

func (d *decoder) inventoryPostgres(t *table) InventoryPostgres {
	pg := InventoryPostgres{Channel: DefaultInventoryChannel}
	if s, p := d.requiredStr(t, "dsn", "the postgres:// URL of the database holding the table"); s != "" {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			d.problemf(p, "not a postgres:// URL (write postgres://USER@HOST:PORT/DATABASE)")
		}
		pg.DSN = s
	}
	pg.Password = d.inventoryPassword(t)
	pg.Query, _ = d.requiredStr(t, "query", "the SELECT that returns one row per certificate, its columns named "+strings.Join(InventoryRowKeys, ", "))
	if s, p, ok := d.str(t, "channel"); ok {
		if s != "" && !pgChannelRE.MatchString(s) {
			d.problemf(p, "%q is not a channel name (letters, digits and '_', not starting with a digit); \"\" reads on the schedule only", s)
		}
		pg.Channel = s
	}
	return pg
}

func (d *decoder) inventoryPassword(t *table) string {
	s, p, ok := d.str(t, "password")
	if !ok {
		return ""
	}
	if name, isRef := certfleet.SecretRef(s); isRef {
		d.secretRef(p, name)
	}
	return s
}

func (d *decoder) inventoryLDAP(t *table) InventoryLDAP {
	l := InventoryLDAP{Filter: DefaultLDAPFilter, Scope: "sub", Persist: true}
	if s, p := d.requiredStr(t, "url", "ldap://HOST[:PORT] or ldaps://HOST[:PORT]"); s != "" {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
			d.problemf(p, "%q: write ldap://HOST[:PORT] or ldaps://HOST[:PORT]", s)
		}
		l.URL = s
	}
	l.BindDN, _, _ = d.str(t, "bind_dn")
	l.Password = d.inventoryPassword(t)
	if (l.BindDN == "") != (l.Password == "") {
		d.problemf(t.p.key("bind_dn"), "set both bind_dn and password, or neither (an anonymous search)")
	}
	l.Base, _ = d.requiredStr(t, "base", "the DN to search below, as in ou=domains,dc=example,dc=org")
	if s, p, ok := d.str(t, "filter"); ok {
		if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, ")") {
			d.problemf(p, "%q is not an LDAP filter (RFC 4515): write it in parentheses, as in (letsencrypt=TRUE)", s)
		}
		l.Filter = s
	}
	if s, p, ok := d.str(t, "scope"); ok {
		if s != "sub" && s != "one" && s != "base" {
			d.problemf(p, "unknown scope %q: use sub (the whole subtree), one (the base's children) or base", s)
		}
		l.Scope = s
	}
	if v, p, ok := d.get(t, "persist"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		l.Persist = b
	}
	if s, p, ok := d.str(t, "trusted_roots"); ok && s != "" {
		l.TrustedRoots, _ = d.abs(p, s)
	}
	at := d.subtable(t, "attributes")
	if at == nil {
		if _, present := t.m["attributes"]; !present {
			d.problemf(t.p.key("attributes"), "required: which LDAP attribute holds each certificate key, as in { identifiers = \"associatedDomain\" }")
		}
		return l
	}
	l.Attributes = make(map[string]string)
	for _, k := range slices.Sorted(maps.Keys(at.m)) {
		if !slices.Contains(InventoryRowKeys, k) {
			continue // reported by unknown
		}
		s, p, ok := d.str(at, k)
		if ok && (s == "" || strings.ContainsAny(s, " ()=*,")) {
			d.problemf(p, "%q is not an LDAP attribute name", s)
			continue
		}
		if ok {
			l.Attributes[k] = s
		}
	}
	d.unknown(at, InventoryRowKeys)
	if _, ok := at.m["identifiers"]; !ok {
		d.problemf(at.p.key("identifiers"), "required: the attribute holding the DNS names, as in identifiers = \"associatedDomain\"")
	}
	return l
}

func (d *decoder) inventoryDir(t *table) InventoryDir {
	dir := InventoryDir{PollInterval: DefaultInventoryPollInterval}
	if s, p := d.requiredStr(t, "dir", "the directory of TOML files, one per team"); s != "" {
		dir.Path, _ = d.abs(p, s)
	}
	if s, p, ok := d.str(t, "poll_interval"); ok {
		if dir.PollInterval = d.duration(p, s); dir.PollInterval <= 0 {
			d.problemf(p, "must be longer than 0 (how often the files' modification times are compared)")
		}
	}
	return dir
}

const webrootRefusal = `inventory certificates cannot use challenge "webroot" (the web root is a directory of the certfleet host, chosen in the config file only): use http-01, tls-alpn-01 or dns-01, or a [[certificate]] in the config file`

// InventoryEntry decodes one row or entry of the source named source:
// fields holds its certificate keys (InventoryRowKeys) as TOML values
// would (a string, a list as []any of strings, a bool), under the same
// rules and with the same messages as a [[certificate]], with the
// source's defaults. where locates the entry in problems (the File of
// each Problem), as in "row id=17" or an LDAP DN. It returns the
// certificate, with Spec.Source the source's; or, when the entry is
// invalid, an *Error listing every problem, and the name the entry
// declares as far as it can be read ("" when it cannot).
func (c *Config) InventoryEntry(source, where string, fields map[string]any) (Certificate, string, error) {
	inv, ok := c.InventorySource(source)
	if !ok {
		return Certificate{}, "", fmt.Errorf("no [inventory.%s] in %s", quoteKey(source), c.File)
	}
	d := &decoder{file: where, base: "/"}
	cert, ok := d.inventoryCertificate(newTable(fields, nil), c, inv)
	if !ok {
		sortProblems(d.problems)
		return Certificate{}, declaredName(fields), &Error{Problems: d.problems}
	}
	return cert, cert.Spec.Name, nil
}

// InventoryFile decodes one file of a directory source: [[certificate]]
// tables with InventoryRowKeys. It returns the certificates that are valid;
// the problems of the others (file, line and field, as for the config
// file) in an *Error, with the names they declare as far as they can be
// read. A file that is not TOML returns only the error.
func (c *Config) InventoryFile(source, filename string, data []byte) (certs []Certificate, invalid []string, err error) {
	inv, ok := c.InventorySource(source)
	if !ok {
		return nil, nil, fmt.Errorf("no [inventory.%s] in %s", quoteKey(source), c.File)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, nil, &Error{Problems: []Problem{syntaxProblem(filename, data, err)}}
	}
	d := &decoder{file: filename, src: string(data), base: filepath.Dir(filename)}
	top := newTable(doc, nil)
	defer func() {
		if len(d.problems) > 0 {
			sortProblems(d.problems)
			err = &Error{Problems: d.problems}
		}
	}()
	defer d.unknown(top, []string{"certificate"})
	v, p, ok := d.get(top, "certificate")
	if !ok {
		return nil, nil, nil // an empty file declares nothing
	}
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be an array of tables: write each certificate under its own [[certificate]] header")
		return nil, nil, nil
	}
	lines := make(map[string]int)
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s", typeName(e))
			continue
		}
		t := newTable(m, p.index(i))
		cert, ok := d.inventoryCertificate(t, c, inv)
		if !ok {
			if name := declaredName(m); name != "" {
				invalid = append(invalid, name)
			}
			continue
		}
		name := strings.ToLower(cert.Spec.Name)
		if line, dup := lines[name]; dup {
			d.problemf(t.p.key("name"), "certificate name %q is already used at line %d", cert.Spec.Name, line)
			continue
		}
		lines[name] = d.lineOf(t.p)
		certs = append(certs, cert)
	}
	return certs, invalid, nil
}

// inventoryCertificate decodes one certificate of inv: the keys a source
// may set, over inv's defaults. Every problem is reported.
func (d *decoder) inventoryCertificate(t *table, cfg *Config, inv Inventory) (Certificate, bool) {
	start := d.mark()
	allowed := make(map[string]any, len(t.m))
	unknown := make(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		switch {
		case slices.Contains(InventoryRowKeys, k):
			allowed[k] = t.m[k]
		case slices.Contains(certKeys, k):
			d.problemf(t.p.key(k), "%s cannot be set by an inventory source (whoever writes to the source would choose files or commands on the certfleet host); set it in [inventory.%s.defaults]", k, quoteKey(inv.Name))
		default:
			unknown[k] = t.m[k]
		}
	}
	d.unknown(newTable(unknown, t.p), InventoryRowKeys)
	if ch, ok := allowed["challenge"].(string); ok && ch == string(certfleet.ChallengeWebroot) {
		d.problemf(t.p.key("challenge"), "%s", webrootRefusal)
		delete(allowed, "challenge")
	}
	cert, ok := d.certificate(&table{m: allowed, p: t.p, used: make(map[string]bool)}, cfg, inv.defs)
	if !ok || d.mark() != start {
		return Certificate{}, false
	}
	// The responders a daemon starts are those the config file's
	// certificates and the sources' defaults use (Config.Uses).
	if ct := cert.Spec.Challenge; (ct == certfleet.ChallengeHTTP01 || ct == certfleet.ChallengeTLSALPN01) && !cfg.Uses(ct) {
		d.problemf(t.p.key("challenge"), "the %s responder does not run: no certificate of %s uses %s; set challenge = %q in [inventory.%s.defaults] so that it starts",
			ct, cfg.File, ct, ct, quoteKey(inv.Name))
		return Certificate{}, false
	}
	cert.Spec.Source = certfleet.InventorySource(inv.Name)
	return cert, true
}

// declaredName is the name an entry declares, as far as it can be read:
// its name, else the name its first identifier gives.
func declaredName(fields map[string]any) string {
	if s, ok := fields["name"].(string); ok {
		if certfleet.ValidateName(s) == nil {
			return s
		}
		return ""
	}
	var first string
	switch v := fields["identifiers"].(type) {
	case []any:
		if len(v) > 0 {
			first, _ = v[0].(string)
		}
	case []string:
		if len(v) > 0 {
			first = v[0]
		}
	}
	id, err := certfleet.ParseIdentifier(first)
	if err != nil {
		return ""
	}
	if name := defaultName(id); certfleet.ValidateName(name) == nil {
		return name
	}
	return ""
}

// InventoryProblems returns the problems of an error of InventoryEntry or
// InventoryFile, or the error as one problem of file where it is not
// an *Error.
func InventoryProblems(err error, file string) []Problem {
	var e *Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return []Problem{{File: file, Message: err.Error()}}
}

// InventoryCertificate returns the certificate of a stored spec of the
// source named source, with the outputs, commands and DNS provider its
// defaults give: what the daemon writes while the source cannot be read
// (its specs stay in force, and are renewed, in the meantime). ok is
// false when there is no such source.
func (c *Config) InventoryCertificate(source string, spec certfleet.CertificateSpec) (Certificate, bool) {
	inv, ok := c.InventorySource(source)
	if !ok {
		return Certificate{}, false
	}
	defs := inv.defs
	cert := Certificate{Spec: spec, Output: Output{Owner: defs.owner, Group: defs.group, KeyMode: defs.keyMode,
		Commands: cloneCommands(defs.commands), Copies: slices.Clone(defs.copies)},
		Prepare: cloneCommands(defs.prepare), Cleanup: cloneCommands(defs.cleanup)}
	if defs.outputDir != "" {
		cert.Output.Dir = filepath.Join(defs.outputDir, spec.Name)
	}
	if spec.Challenge == certfleet.ChallengeDNS01 {
		cert.DNSProvider = defs.dnsProvider
		if cert.DNSProvider == "" && len(c.DNS01.Providers) == 1 {
			for n := range c.DNS01.Providers {
				cert.DNSProvider = n
			}
		}
	}
	return cert, true
}
