package config

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/endpoint"
)

// The decoder walks the document as generic TOML values rather than
// decoding into structs: the TOML library stops at the first type mismatch,
// and an operator should see every problem of the file at once.

// Keys of each table, in documentation order (listed in unknown-key problems).
var (
	topKeys      = []string{"state", "log", "ca", "accounts", "http01", "tlsalpn01", "renewal", "dns01", "defaults", "certificate", "api", "staging", "deploy", "alerts", "master_key_file", "previous_master_key_files", "state_dir", "rate_limits", "metrics"}
	logKeys      = []string{"level", "format"}
	accountKeys  = []string{"directory", "trusted_roots", "email", "eab_key_id", "eab_hmac_key", "caa_identities"}
	listenKeys   = []string{"listen"}
	renewalKeys  = []string{"concurrency", "renew_before"}
	defaultsKeys = []string{"key_types", "challenge", "webroot", "dns_provider", "output_dir", "owner", "group", "key_mode", "commands", "copy", "prepare", "cleanup"}
	certKeys     = []string{"name", "identifiers", "key_types", "challenge", "webroot", "dns_provider", "profile", "account",
		"renew_before", "reuse_key", "output_dir", "owner", "group", "key_mode", "commands", "endpoints", "copy", "prepare", "cleanup"}
)

// keyHints suggest the right key for likely mistakes.
var keyHints = map[string]string{
	"names": "identifiers", "domains": "identifiers", "domain": "identifiers", "san": "identifiers",
	"sans": "identifiers", "hosts": "identifiers", "key_type": "key_types", "keytype": "key_types",
	"command": "commands", "reload": "commands", "url": "directory", "server": "directory",
	"eab_hmac": "eab_hmac_key", "eab_kid": "eab_key_id", "certificates": "certificate", "account": "accounts",
	"certs": "certificate", "webroot_path": "webroot", "dir": "output_dir", "mode": "key_mode",
}

var (
	accountNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	profileRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

type decoder struct {
	file     string
	src      string
	base     string // absolute directory of the file
	pos      positions
	problems []Problem

	caMissing bool // the missing [ca] directory was reported
	// dnsProviderBroken names [dns01.providers] tables that had problems,
	// so certificates using them do not repeat the complaint.
	dnsProviderBroken map[string]bool
	caa               map[string][]string // caa_identities by account
}

// table is a TOML table being decoded; used records the keys looked at.
type table struct {
	m    map[string]any
	p    path
	used map[string]bool
}

func newTable(m map[string]any, p path) *table {
	return &table{m: m, p: p, used: make(map[string]bool)}
}

func (d *decoder) problemf(p path, format string, args ...any) {
	if d.pos == nil {
		d.pos = scanPositions(d.src)
	}
	d.problems = append(d.problems, Problem{
		File:    d.file,
		Line:    d.pos.line(p),
		Field:   p.String(),
		Message: fmt.Sprintf(format, args...),
	})
}

// mark returns the number of problems so far, to tell whether a step added any.
func (d *decoder) mark() int { return len(d.problems) }

func (d *decoder) get(t *table, key string) (any, path, bool) {
	t.used[key] = true
	v, ok := t.m[key]
	return v, t.p.key(key), ok
}

// unknown reports the keys of t that were never looked at.
func (d *decoder) unknown(t *table, known []string) {
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		if t.used[k] {
			continue
		}
		if k == "renew_before" && t.p.String() == "defaults" {
			d.problemf(t.p.key(k), "unknown key renew_before: the default margin is set in [renewal]")
			continue
		}
		if hint, ok := keyHints[k]; ok && slices.Contains(known, hint) {
			d.problemf(t.p.key(k), "unknown key %s (did you mean %s?)", quoteKey(k), hint)
			continue
		}
		d.problemf(t.p.key(k), "unknown key %s; the keys here are %s", quoteKey(k), strings.Join(known, ", "))
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("a %T", v)
}

func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case []map[string]any:
		out := make([]any, len(a))
		for i, m := range a {
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

// str returns a string value; ok is false when the key is absent or (with
// a problem reported) not a string.
func (d *decoder) str(t *table, key string) (s string, p path, ok bool) {
	v, p, ok := d.get(t, key)
	if !ok {
		return "", p, false
	}
	s, ok = v.(string)
	if !ok {
		d.problemf(p, "must be a string, not %s", typeName(v))
	}
	return s, p, ok
}

// subtable returns a table value; nil when absent or not a table.
func (d *decoder) subtable(t *table, key string) *table {
	v, p, ok := d.get(t, key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.problemf(p, "must be a table ([%s]), not %s", p, typeName(v))
		return nil
	}
	return newTable(m, p)
}

// strList returns a list of strings. Elements that are not strings are
// reported and left out; ok is false when the key is absent or not an array.
func (d *decoder) strList(t *table, key string) (list []string, paths []path, p path, ok bool) {
	v, p, ok := d.get(t, key)
	if !ok {
		return nil, nil, p, false
	}
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be an array of strings, as in [\"a\", \"b\"], not %s", typeName(v))
		return nil, nil, p, false
	}
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			d.problemf(p.index(i), "must be a string, not %s", typeName(e))
			continue
		}
		list = append(list, s)
		paths = append(paths, p.index(i))
	}
	return list, paths, p, true
}

// abs resolves a path from the file against the file's directory.
func (d *decoder) abs(p path, s string) (string, bool) {
	switch {
	case strings.ContainsRune(s, 0):
		d.problemf(p, "path contains a NUL byte")
		return "", false
	case s == "~" || strings.HasPrefix(s, "~/"):
		d.problemf(p, "%q: ~ is not expanded; write the full path", s)
		return "", false
	case filepath.IsAbs(s):
		return filepath.Clean(s), true
	}
	return filepath.Join(d.base, s), true
}

func (d *decoder) config(doc map[string]any) *Config {
	top := newTable(doc, nil)
	cfg := &Config{
		State:           DefaultState,
		Log:             Log{Level: slog.LevelInfo, Format: "text"},
		HTTP01Listen:    DefaultHTTP01Listen,
		TLSALPN01Listen: DefaultTLSALPN01Listen,
		Renewal:         Renewal{Concurrency: DefaultConcurrency},
		Accounts:        make(map[string]Account),
	}
	if s, p, ok := d.str(top, "state"); ok {
		cfg.State = d.state(p, s)
	}
	if s, p, ok := d.str(top, "state_dir"); ok && s != "" {
		cfg.StateDir, _ = d.abs(p, s)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir(cfg.State)
	}
	d.masterKey(top, cfg)
	if t := d.subtable(top, "log"); t != nil {
		d.log(t, &cfg.Log)
	}
	d.accounts(top, cfg)
	cfg.HTTP01Listen = d.listen(top, "http01", cfg.HTTP01Listen)
	cfg.TLSALPN01Listen = d.listen(top, "tlsalpn01", cfg.TLSALPN01Listen)
	if t := d.subtable(top, "renewal"); t != nil {
		d.renewal(t, &cfg.Renewal)
	}
	cfg.CAAIdentities = d.caa
	d.dns01(top, cfg)
	defs := d.defaults(d.subtable(top, "defaults"))
	cfg.DNS01.DefaultProvider = defs.dnsProvider
	if cfg.DNS01.DefaultProvider == "" && len(cfg.DNS01.Providers) == 1 {
		for n := range cfg.DNS01.Providers {
			cfg.DNS01.DefaultProvider = n
		}
	}
	d.certificates(top, cfg, defs)
	d.deploy(top, cfg)
	d.alerts(top, cfg)
	d.api(top, cfg)
	d.staging(top, cfg, defs.outputDir) // after [api]: api_listen needs tls_certificate
	d.rateLimits(top, cfg)
	d.metrics(top, cfg) // after [api]: listen must differ from it
	d.unknown(top, topKeys)
	return cfg
}

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

func (d *decoder) listen(top *table, key, def string) string {
	t := d.subtable(top, key)
	if t == nil {
		return def
	}
	defer d.unknown(t, listenKeys)
	s, p, ok := d.str(t, "listen")
	if !ok {
		return def
	}
	if s == "" {
		return ""
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		d.problemf(p, "%q is not a listen address; use host:port or :port, as in %q, or \"\" to disable the responder", s, def)
	}
	return s
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
	d.unknown(t, renewalKeys)
}

func (d *decoder) duration(p path, s string) time.Duration {
	v, err := ParseDuration(s)
	if err != nil {
		d.problemf(p, "%v", err)
	}
	return v
}

// accounts decodes [ca] and [accounts.NAME].
func (d *decoder) accounts(top *table, cfg *Config) {
	var def Account
	if t := d.subtable(top, "ca"); t != nil {
		def = d.account(t, certfleet.DefaultAccount)
		if _, set := t.m["directory"]; !set && len(t.m) > 0 {
			d.caMissing = true
			d.problemf(t.p.key("directory"), "required: the CA's directory URL, or letsencrypt, letsencrypt-staging or zerossl")
		}
		if def.Directory != "" {
			cfg.Accounts[certfleet.DefaultAccount] = def
		}
	}
	t := d.subtable(top, "accounts")
	if t == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(t.m)) {
		at := d.subtable(t, name)
		if at == nil {
			continue
		}
		switch {
		case name == certfleet.DefaultAccount:
			d.problemf(at.p, "the account name %q is reserved for [ca]", name)
			continue
		case !accountNameRE.MatchString(name):
			d.problemf(at.p, "account name %s: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", quoteKey(name))
			continue
		}
		a := d.account(at, name)
		if _, set := at.m["directory"]; !set {
			if def.Directory == "" {
				d.problemf(at.p.key("directory"), "required, since [ca] has no directory to inherit")
			}
			a.Directory = def.Directory
			if a.TrustedRoots == "" {
				a.TrustedRoots = def.TrustedRoots
			}
		}
		cfg.Accounts[name] = a
	}
}

func (d *decoder) account(t *table, name string) Account {
	a := Account{Name: name}
	if s, p, ok := d.str(t, "directory"); ok {
		u, err := resolveDirectory(s)
		if err != nil {
			d.problemf(p, "%v", err)
		}
		a.Directory = u
	}
	if s, p, ok := d.str(t, "trusted_roots"); ok && s != "" {
		a.TrustedRoots, _ = d.abs(p, s)
	}
	if s, p, ok := d.str(t, "email"); ok && s != "" {
		s = strings.TrimPrefix(s, "mailto:")
		if addr, err := mail.ParseAddress(s); err != nil || addr.Name != "" || addr.Address != s {
			d.problemf(p, "%q is not an email address", s)
		}
		a.Email = s
	}
	kid, kidPath, kidSet := d.str(t, "eab_key_id")
	hmac, hmacPath, hmacSet := d.str(t, "eab_hmac_key")
	kidSet, hmacSet = kidSet && kid != "", hmacSet && hmac != ""
	switch {
	case kidSet && !hmacSet:
		d.problemf(hmacPath, "required with eab_key_id: External Account Binding needs both the key ID and the HMAC key")
	case hmacSet && !kidSet:
		d.problemf(kidPath, "required with eab_hmac_key: External Account Binding needs both the key ID and the HMAC key")
	}
	if hmacSet {
		if ref, ok := certfleet.SecretRef(hmac); ok {
			d.secretRef(hmacPath, ref)
		} else if !validEABKey(hmac) {
			// Never quote hmac in a problem: it is a secret.
			d.problemf(hmacPath, "not a base64url string (letters, digits, '-' and '_', as the CA issued it); the value is a secret and not shown")
		}
	}
	a.EABKeyID, a.EABHMACKey = kid, hmac
	if ids := d.caaIdentitiesOf(t); len(ids) > 0 {
		if d.caa == nil {
			d.caa = map[string][]string{}
		}
		d.caa[name] = ids
	}
	d.unknown(t, accountKeys)
	return a
}

// resolveDirectory turns a directory alias or URL into the directory URL.
func resolveDirectory(s string) (string, error) {
	if u, ok := directoryAliases[strings.ToLower(s)]; ok {
		return u, nil
	}
	u, err := url.Parse(s)
	// RFC 8555 §6.1: "Each ACME function is accomplished by the client
	// sending a sequence of HTTPS requests to the server".
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%q is neither an https:// URL nor a known CA (letsencrypt, letsencrypt-staging, zerossl)", s)
	}
	return s, nil
}

// certDefaults are the decoded [defaults]; clean is false when any of them
// had a problem, so that certificates inheriting them skip the cross-checks
// that would only repeat it.
type certDefaults struct {
	keyTypes     []certfleet.KeyType
	challenge    certfleet.ChallengeType
	webroot      string
	dnsProvider  string
	outputDir    string
	owner, group string
	keyMode      fs.FileMode
	commands     [][]string
	copies       []Copy
	prepare      [][]string
	cleanup      [][]string
	clean        bool
}

func (d *decoder) defaults(t *table) certDefaults {
	defs := certDefaults{
		keyTypes:  []certfleet.KeyType{DefaultKeyType},
		challenge: DefaultChallenge,
		outputDir: DefaultOutputDir,
		keyMode:   DefaultKeyMode,
		clean:     true,
	}
	if t == nil {
		return defs
	}
	start := d.mark()
	if kts, ok := d.keyTypes(t); ok {
		defs.keyTypes = kts
	}
	if ct, _, ok := d.challenge(t); ok {
		defs.challenge = ct
	}
	if s, p, ok := d.str(t, "webroot"); ok && s != "" {
		defs.webroot, _ = d.abs(p, s)
	}
	defs.dnsProvider, _, _ = d.str(t, "dns_provider")
	if s, p, ok := d.str(t, "output_dir"); ok {
		defs.outputDir = ""
		if s != "" {
			defs.outputDir, _ = d.abs(p, s)
		}
	}
	defs.owner, _ = d.principal(t, "owner")
	defs.group, _ = d.principal(t, "group")
	if m, ok := d.keyMode(t); ok {
		defs.keyMode = m
	}
	if cmds, ok := d.commands(t); ok {
		defs.commands = cmds
	}
	if cps, ok := d.copies(t); ok {
		defs.copies = cps
	}
	if cmds, ok := d.commandsAt(t, "prepare"); ok {
		defs.prepare = cmds
	}
	if cmds, ok := d.commandsAt(t, "cleanup"); ok {
		defs.cleanup = cmds
	}
	d.unknown(t, defaultsKeys)
	defs.clean = d.mark() == start
	return defs
}

func (d *decoder) keyTypes(t *table) ([]certfleet.KeyType, bool) {
	start := d.mark()
	list, paths, p, ok := d.strList(t, "key_types")
	if !ok {
		return nil, false
	}
	var kts []certfleet.KeyType
	for i, s := range list {
		kt, err := certfleet.ParseKeyType(s)
		if err != nil {
			d.problemf(paths[i], "%v", err)
			continue
		}
		kts = append(kts, kt)
	}
	if d.mark() != start {
		return nil, false
	}
	switch {
	case len(list) == 0 || len(list) > 2:
		d.problemf(p, "give one key type, or two of different families (one RSA, one ECDSA) for dual certificates")
	case len(kts) == 2 && kts[0].Family() == kts[1].Family():
		d.problemf(p, "dual certificates need one RSA and one ECDSA key type, not %s and %s", kts[0], kts[1])
	default:
		return kts, true
	}
	return nil, false
}

func (d *decoder) challenge(t *table) (certfleet.ChallengeType, path, bool) {
	s, p, ok := d.str(t, "challenge")
	if !ok {
		return "", p, false
	}
	ct, err := certfleet.ParseChallengeType(s)
	if err != nil {
		d.problemf(p, "%v", err)
		return "", p, false
	}
	return ct, p, true
}

// principal decodes owner or group: a user or group name, or a numeric ID.
func (d *decoder) principal(t *table, key string) (string, bool) {
	s, p, ok := d.str(t, key)
	if !ok {
		return "", false
	}
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == ':' || r == 0x7f }) >= 0 {
		d.problemf(p, "%q is not a user or group name", s)
		return "", false
	}
	return s, true
}

func (d *decoder) keyMode(t *table) (fs.FileMode, bool) {
	v, p, ok := d.get(t, "key_mode")
	if !ok {
		return 0, false
	}
	var mode uint64
	switch x := v.(type) {
	case string:
		m, err := strconv.ParseUint(x, 8, 32)
		if err != nil {
			d.problemf(p, "%q is not an octal file mode; write it as \"0640\"", x)
			return 0, false
		}
		mode = m
	case int64:
		if x < 0 {
			d.problemf(p, "%d is not a file mode; write it as a string, as in \"0640\"", x)
			return 0, false
		}
		mode = uint64(x)
	default:
		d.problemf(p, "must be an octal file mode string, as in \"0640\", not %s", typeName(v))
		return 0, false
	}
	switch {
	case mode > 0o777:
		d.problemf(p, "%#o is not a permission mode (0 to 0777); write it as a string, as in \"0640\"", mode)
	case mode&0o007 != 0:
		d.problemf(p, "%#o lets every user on the host read or change the private key; use 0600 or 0640", mode)
	default:
		return fs.FileMode(mode), true
	}
	return 0, false
}

func (d *decoder) commands(t *table) ([][]string, bool) { return d.commandsAt(t, "commands") }

// commandsAt decodes a list of argv lists at key (commands, prepare, cleanup).
func (d *decoder) commandsAt(t *table, key string) ([][]string, bool) {
	v, p, ok := d.get(t, key)
	if !ok {
		return nil, false
	}
	const how = `a list of argv lists, as in [["systemctl", "reload", "nginx"]] (commands run without a shell)`
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be %s, not %s", how, typeName(v))
		return nil, false
	}
	start := d.mark()
	cmds := make([][]string, 0, len(arr))
	for i, e := range arr {
		ep := p.index(i)
		argvAny, ok := asArray(e)
		if !ok {
			d.problemf(ep, "must be an argv list, not %s: commands is %s", typeName(e), how)
			continue
		}
		if len(argvAny) == 0 {
			d.problemf(ep, "empty command: give the program and its arguments, as in [\"systemctl\", \"reload\", \"nginx\"]")
			continue
		}
		argv := make([]string, 0, len(argvAny))
		for j, a := range argvAny {
			s, ok := a.(string)
			if !ok {
				d.problemf(ep.index(j), "must be a string, not %s", typeName(a))
				continue
			}
			if strings.ContainsRune(s, 0) {
				d.problemf(ep.index(j), "argument contains a NUL byte")
				continue
			}
			argv = append(argv, s)
		}
		if len(argv) > 0 && strings.TrimSpace(argv[0]) == "" {
			d.problemf(ep.index(0), "the program name is empty")
		}
		cmds = append(cmds, argv)
	}
	return cmds, d.mark() == start
}

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
	}
}

func (d *decoder) lineOf(p path) int {
	if d.pos == nil {
		d.pos = scanPositions(d.src)
	}
	return d.pos.line(p)
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
	}
	cert := Certificate{Output: Output{Owner: defs.owner, Group: defs.group, KeyMode: defs.keyMode, Commands: defs.commands, Copies: defs.copies},
		Prepare: defs.prepare, Cleanup: defs.cleanup}
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
	if v, p, ok := d.get(t, "reuse_key"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		spec.ReuseKey = b
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

func cloneCommands(cmds [][]string) [][]string {
	if cmds == nil {
		return nil
	}
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		out[i] = slices.Clone(c)
	}
	return out
}

// secretOnLine reports whether line (1-based) of data sets eab_hmac_key.
func secretOnLine(data []byte, line int) bool {
	if line < 1 {
		return bytes.Contains(data, []byte("eab_hmac_key"))
	}
	lines := bytes.Split(data, []byte("\n"))
	// A multi-line value may end on a later line than its key: look at
	// the line and the few before it.
	for l := max(line-3, 1); l <= line && l <= len(lines); l++ {
		if bytes.Contains(lines[l-1], []byte("eab_hmac_key")) {
			return true
		}
	}
	return false
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
