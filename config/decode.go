package config

import (
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The decoder that every section's decoding uses (problems with their
// lines, tables and their unknown keys, typed values) and config, the walk
// over the top level that decodes each section in turn.
//
// The decoder walks the document as generic TOML values rather than
// decoding into structs: the TOML library stops at the first type mismatch,
// and an operator should see every problem of the file at once.

// Keys of each table, in documentation order (listed in unknown-key
// problems): the top level's here, each section's in its own file.
var topKeys = []string{"state", "log", "ca", "accounts", "http01", "tlsalpn01", "renewal", "dns01", "defaults", "certificate", "api", "staging", "deploy", "alerts", "master_key_file", "previous_master_key_files", "state_dir", "rate_limits", "metrics", "inventory", "events", "export", "webroots", "scheduler", "self_test", "identities"}

// keyHints suggest the right key for likely mistakes.
var keyHints = map[string]string{
	"names": "identifiers", "domains": "identifiers", "domain": "identifiers", "san": "identifiers",
	"sans": "identifiers", "hosts": "identifiers", "key_type": "key_types", "keytype": "key_types",
	"command": "commands", "reload": "commands", "url": "directory", "server": "directory",
	"eab_hmac": "eab_hmac_key", "eab_kid": "eab_key_id", "certificates": "certificate", "account": "accounts",
	"certs": "certificate", "webroot_path": "webroot", "dir": "output_dir", "mode": "key_mode",
}

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
	// One mistake, one error: a field already reported (a value of the
	// wrong type, say) is not reported again by a later check that only
	// sees it missing.
	for _, q := range d.problems {
		if q.File == d.file && q.Field == p.String() {
			return
		}
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
		if (k == "renew_before" || k == "renew_after") && t.p.String() == "defaults" {
			d.problemf(t.p.key(k), "unknown key %s: the default is set in [renewal]", k)
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
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }):
		// Tabs and newlines would also break the lists of files that
		// batch commands get (CERTFLEET_CHANGED_FILE).
		d.problemf(p, "%q contains a control character (a tab or newline?)", s)
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
	cfg.HTTP01Listen, cfg.HTTP01ListenSet = d.listen(top, "http01", cfg.HTTP01Listen)
	cfg.TLSALPN01Listen, cfg.TLSALPN01ListenSet = d.listen(top, "tlsalpn01", cfg.TLSALPN01Listen)
	d.webroots(top, cfg)
	if t := d.subtable(top, "renewal"); t != nil {
		d.renewal(t, &cfg.Renewal)
	}
	d.scheduler(top, cfg)
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
	d.inventory(top, cfg, defs)
	d.deploy(top, cfg)
	d.alerts(top, cfg)
	d.api(top, cfg)
	d.identities(top, cfg)
	d.staging(top, cfg, defs.outputDir) // after [api]: api_listen needs tls_certificate
	d.rateLimits(top, cfg)
	d.metrics(top, cfg) // after [api]: listen must differ from it
	d.events(top, cfg)
	d.export(top, cfg)
	d.selfTest(top, cfg) // docs/readiness.md
	d.unknown(top, topKeys)
	return cfg
}

func (d *decoder) duration(p path, s string) time.Duration {
	v, err := ParseDuration(s)
	if err != nil {
		d.problemf(p, "%v", err)
	}
	return v
}

func (d *decoder) lineOf(p path) int {
	if d.pos == nil {
		d.pos = scanPositions(d.src)
	}
	return d.pos.line(p)
}
