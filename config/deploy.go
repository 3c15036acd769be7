package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// stagingKeys are the keys of [staging].
var stagingKeys = []string{"directory", "trusted_roots", "state", "output_root", "run_commands", "api_listen"}

// Staging configures test mode ([staging]): a rehearsal of the whole
// pipeline against a staging CA, with its own store (hence its own accounts
// and keys) and its own output tree, so that it can never overwrite a
// production key or certificate. See StagingConfig and docs/deploy.md.
type Staging struct {
	// Directory is the staging CA's directory URL (aliases resolved).
	// Default: letsencrypt-staging when [ca] is Let's Encrypt; otherwise
	// "" and StagingConfig fails asking for it.
	Directory string
	// TrustedRoots is the absolute path of extra roots for the staging
	// CA's HTTPS, or "".
	TrustedRoots string
	// State is the staging store. Default: the production SQLite path with
	// "-staging" before its extension (certfleet.db → certfleet-staging.db);
	// required when the production store is PostgreSQL.
	State string
	// OutputRoot is the directory every output directory is re-rooted
	// under. Default: "staging" inside the [defaults] output directory.
	OutputRoot string
	// RunCommands runs commands in test mode; when false (the default)
	// they are printed instead.
	RunCommands bool
	// APIListen is the address test mode serves the HTTP API on (bearer
	// tokens of the staging store only), so that agents can rehearse with
	// certfleet agent --staging. "" (the default) serves no API in test
	// mode. It must differ from [api] listen and url_listen; plain HTTP
	// only on loopback unless [api] tls_certificate is set.
	APIListen string

	// base is the production [defaults] output directory: outputs inside
	// it keep their path relative to it when re-rooted.
	base string
}

// staging decodes [staging] and fills in its defaults; it runs after the
// accounts, state and certificates are decoded.
func (d *decoder) staging(top *table, cfg *Config, outputBase string) {
	st := Staging{base: outputBase}
	if ca, ok := cfg.Accounts["default"]; ok && ca.Directory == directoryAliases["letsencrypt"] {
		st.Directory = directoryAliases["letsencrypt-staging"]
	}
	if dir, ext := filepath.Split(cfg.State); !strings.Contains(cfg.State, "://") && cfg.State != "" {
		e := filepath.Ext(ext)
		st.State = filepath.Join(dir, strings.TrimSuffix(ext, e)+"-staging"+e)
	}
	if outputBase != "" {
		st.OutputRoot = filepath.Join(outputBase, "staging")
	}
	defer func() { cfg.Staging = st }()
	t := d.subtable(top, "staging")
	if t == nil {
		return
	}
	defer d.unknown(t, stagingKeys)
	if s, p, ok := d.str(t, "directory"); ok {
		u, err := resolveDirectory(s)
		if err != nil {
			d.problemf(p, "%v", err)
		}
		st.Directory = u
	}
	if s, p, ok := d.str(t, "trusted_roots"); ok && s != "" {
		st.TrustedRoots, _ = d.abs(p, s)
	}
	if s, p, ok := d.str(t, "state"); ok {
		st.State = d.state(p, s)
	}
	if s, p, ok := d.str(t, "output_root"); ok {
		if s == "" {
			d.problemf(p, "must not be empty: give the directory test-mode outputs are written under")
		} else {
			st.OutputRoot, _ = d.abs(p, s)
		}
	}
	if v, p, ok := d.get(t, "run_commands"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		st.RunCommands = b
	}
	if s, p, ok := d.str(t, "api_listen"); ok && s != "" {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			d.problemf(p, "%q is not a listen address; use host:port, as in \"127.0.0.1:8556\", or \"\" to serve no API in test mode", s)
		} else if cfg.API.TLSCertificate == "" && !loopback(s) {
			d.problemf(p, "%q is not a loopback address: without [api] tls_certificate the API serves plain HTTP, only on loopback", s)
		}
		st.APIListen = s
	}
}

// reroot moves a production output path under the staging output root:
// a path inside the [defaults] output directory keeps its path relative to
// it (live/www → live/staging/www), any other keeps its whole absolute path
// (/etc/haproxy/certs → ROOT/etc/haproxy/certs).
func (s Staging) reroot(p string) string {
	if s.base != "" {
		if rel, err := filepath.Rel(s.base, p); err == nil && filepath.IsLocal(rel) {
			return filepath.Join(s.OutputRoot, rel)
		}
	}
	return filepath.Join(s.OutputRoot, p)
}

// StagingConfig returns the configuration of a test-mode run: every
// account at the staging CA (without EAB credentials, which belong to the
// production CA), the staging store, and every output directory re-rooted
// under the staging output root, and no endpoints. Commands are kept; the caller prints them
// instead of running them unless Staging.RunCommands is set. It fails when
// a staging setting is missing or when CheckStaging refuses the result.
func (c *Config) StagingConfig() (*Config, error) {
	st := c.Staging
	var missing []string
	if st.Directory == "" {
		missing = append(missing, "[staging] directory (the staging CA's directory URL; it defaults to letsencrypt-staging only when [ca] is letsencrypt)")
	}
	if st.State == "" {
		missing = append(missing, "[staging] state (a separate SQLite file or PostgreSQL database for test mode)")
	}
	writes := slices.ContainsFunc(c.Certificates, func(cert Certificate) bool { return cert.Output.Dir != "" || len(cert.Output.Copies) > 0 }) ||
		slices.ContainsFunc(c.Inventory, func(inv Inventory) bool { return inv.defs.outputDir != "" || len(inv.defs.copies) > 0 })
	if st.OutputRoot == "" && writes {
		missing = append(missing, "[staging] output_root (where test-mode certificates are written)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: test mode needs %s", c.File, strings.Join(missing, " and "))
	}
	s := *c
	s.State = st.State
	// Test mode keeps its own dns-01 journal and acme-dns credentials.
	if strings.Contains(st.State, "://") {
		s.StateDir = filepath.Join(c.StateDir, "staging")
	} else {
		s.StateDir = DefaultStateDir(st.State)
	}
	s.Accounts = make(map[string]Account, len(c.Accounts))
	for name, a := range maps.All(c.Accounts) {
		a.Directory, a.TrustedRoots = st.Directory, st.TrustedRoots
		a.EABKeyID, a.EABHMACKey = "", ""
		s.Accounts[name] = a
	}
	s.Certificates = make([]Certificate, len(c.Certificates))
	for i, cert := range c.Certificates {
		if cert.Output.Dir != "" {
			cert.Output.Dir = st.reroot(cert.Output.Dir)
		}
		// Production's servers serve production's certificates: checking
		// them against staging ones would only report mismatches.
		cert.Endpoints = nil
		cert.Output.Copies = slices.Clone(cert.Output.Copies)
		for j := range cert.Output.Copies {
			cert.Output.Copies[j].Path = st.reroot(cert.Output.Copies[j].Path)
		}
		s.Certificates[i] = cert
	}
	// So are the inventory sources' certificates (read from the real
	// sources into the staging store).
	s.Inventory = slices.Clone(c.Inventory)
	for i := range s.Inventory {
		d := &s.Inventory[i].defs
		if d.outputDir != "" {
			d.outputDir = st.reroot(d.outputDir)
		}
		d.copies = slices.Clone(d.copies)
		for j := range d.copies {
			d.copies[j].Path = st.reroot(d.copies[j].Path)
		}
	}
	// Production's pager is production's: a rehearsal keeps its alert
	// incidents (certfleet status shows them) but notifies nobody.
	s.Alerts.WebhookURL, s.Alerts.WebhookBearerTokenFile, s.Alerts.Command = "", "", nil
	// Nor does it tell production's receivers of its events (an LDAP
	// write-back would put a staging certificate into production).
	s.Events = Events{}
	// Nor does it export into production's inventory.
	s.Export = Export{}
	// Production's listeners stay production's: a rehearsal serves the API
	// only on [staging] api_listen, from the staging store.
	s.API = API{}
	if st.APIListen != "" {
		s.API = API{Listen: st.APIListen, TLSCertificate: c.API.TLSCertificate, PackSize: c.API.PackSize, PackDelay: c.API.PackDelay}
	}
	// The same for production's scrape address: /metrics stays on
	// [staging] api_listen, behind a token.
	s.Metrics.Listen = ""
	if err := CheckStaging(c, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// CheckStaging verifies that a test-mode configuration cannot touch
// production: its store differs from production's, and none of its output
// paths equals, contains or lies inside a production output path. The
// check is lexical, on cleaned absolute paths (the package does no I/O);
// cmd/certfleet repeats it with symlinks resolved.
func CheckStaging(prod, staging *Config) error {
	var errs []error
	if staging.State == prod.State {
		errs = append(errs, fmt.Errorf("the staging state %s is the production store; set [staging] state to another file or database", staging.State))
	}
	if a := staging.API.Listen; a != "" && (a == prod.API.Listen || a == prod.API.URLListen) {
		errs = append(errs, fmt.Errorf("the staging API address %s is a production API listener; set [staging] api_listen to another address", a))
	}
	if a := staging.API.URLListen; a != "" {
		errs = append(errs, fmt.Errorf("test mode serves no URL-credential API (%s); leave it to production", a))
	}
	var prodPaths []string
	for _, c := range prod.Certificates {
		prodPaths = append(prodPaths, c.outputPaths()...)
	}
	for _, c := range staging.Certificates {
		for _, sp := range c.outputPaths() {
			for _, p := range prodPaths {
				if overlaps(sp, p) {
					errs = append(errs, fmt.Errorf("certificate %s: the staging output %s overlaps the production output %s; set [staging] output_root to a directory outside every production output", c.Spec.Name, sp, p))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("test mode refused, to protect production files: %w", errors.Join(errs...))
	}
	return nil
}

// overlaps reports whether a equals b or one is inside the other.
func overlaps(a, b string) bool {
	a, b = filepath.Clean(a), filepath.Clean(b)
	within := func(x, dir string) bool {
		rel, err := filepath.Rel(dir, x)
		return err == nil && (rel == "." || filepath.IsLocal(rel))
	}
	return within(a, b) || within(b, a)
}

// Contents of a copy target (Copy.Content).
const (
	CopyCombined  = "combined"  // private key, then leaf and chain (HAProxy)
	CopyFullchain = "fullchain" // leaf and chain
	CopyCert      = "cert"      // leaf only
	CopyChain     = "chain"     // chain only
	CopyKey       = "key"       // private key only
)

var copyKeys = []string{"path", "content", "owner", "group", "mode"}

// Copy is one extra file a certificate is written to (copy = [{...}]).
type Copy struct {
	// Path is the absolute file path; "{name}" in it stands for the
	// certificate's name (useful in [defaults]).
	Path string
	// Content is what the file holds: CopyCombined, CopyFullchain,
	// CopyCert, CopyChain or CopyKey.
	Content string
	// Owner and Group own the file ("" keeps the daemon's).
	Owner, Group string
	// Mode is the file's permission. Default 0600 for contents with the
	// private key, 0644 for the others.
	Mode fs.FileMode
}

// HasKey reports whether the file holds the private key.
func (c Copy) HasKey() bool { return c.Content == CopyCombined || c.Content == CopyKey }

// copies decodes a copy list; ok is false when the key is absent or had
// problems.
func (d *decoder) copies(t *table) ([]Copy, bool) {
	v, p, ok := d.get(t, "copy")
	if !ok {
		return nil, false
	}
	const how = `a list of tables, as in [{ path = "/etc/haproxy/certs/{name}.pem", content = "combined" }]`
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be %s, not %s", how, typeName(v))
		return nil, false
	}
	start := d.mark()
	var out []Copy
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s: copy is %s", typeName(e), how)
			continue
		}
		ct := newTable(m, p.index(i))
		var c Copy
		if s, pp, ok := d.str(ct, "path"); !ok || s == "" {
			if !ok && d.mark() == start {
				d.problemf(pp, "required: the file to write")
			} else if ok {
				d.problemf(pp, "must not be empty: give the file to write")
			}
		} else if strings.HasSuffix(s, "/") {
			d.problemf(pp, "%q is a directory; give a file path", s)
		} else {
			c.Path, _ = d.abs(pp, s)
		}
		s, cp, ok := d.str(ct, "content")
		switch {
		case !ok:
			d.problemf(cp, "required: one of combined, fullchain, cert, chain, key")
		case slices.Contains([]string{CopyCombined, CopyFullchain, CopyCert, CopyChain, CopyKey}, s):
			c.Content = s
		default:
			d.problemf(cp, "%q is not a content; use combined (key + fullchain), fullchain, cert, chain or key", s)
		}
		c.Owner, _ = d.principal(ct, "owner")
		c.Group, _ = d.principal(ct, "group")
		c.Mode = 0o644
		if c.HasKey() {
			c.Mode = DefaultKeyMode
		}
		if m, ok := d.fileMode(ct, "mode", c.HasKey()); ok {
			c.Mode = m
		}
		d.unknown(ct, copyKeys)
		out = append(out, c)
	}
	return out, d.mark() == start
}

// fileMode decodes an octal permission; private key files may not be
// world-accessible.
func (d *decoder) fileMode(t *table, key string, private bool) (fs.FileMode, bool) {
	v, p, ok := d.get(t, key)
	if !ok {
		return 0, false
	}
	s, isStr := v.(string)
	m, err := strconv.ParseUint(s, 8, 32)
	switch {
	case !isStr:
		d.problemf(p, "must be an octal file mode string, as in \"0640\", not %s", typeName(v))
	case err != nil || m > 0o777:
		d.problemf(p, "%q is not an octal permission mode (0 to 0777); write it as \"0640\"", s)
	case private && m&0o007 != 0:
		d.problemf(p, "%#o lets every user on the host read or change the private key; use 0600 or 0640", m)
	default:
		return fs.FileMode(m), true
	}
	return 0, false
}

// CopyPaths returns the certificate's copy targets with "{name}" expanded.
func (c Certificate) CopyPaths() []Copy {
	out := make([]Copy, len(c.Output.Copies))
	for i, cp := range c.Output.Copies {
		cp.Path = strings.ReplaceAll(cp.Path, "{name}", c.Spec.Name)
		out[i] = cp
	}
	return out
}

// outputPaths lists the output directory (if any) and the copy paths.
func (c Certificate) outputPaths() []string {
	var out []string
	if c.Output.Dir != "" {
		out = append(out, c.Output.Dir)
	}
	for _, cp := range c.CopyPaths() {
		out = append(out, cp.Path)
	}
	return out
}

// Deploy holds the actions for every certificate ([deploy]).
type Deploy struct {
	// Commands run, in order and without a shell, once per batch of
	// certificates whose files changed (after all of them were written,
	// and after the Actions), with CERTFLEET_CHANGED listing their names
	// and the other batch variables (docs/deploy.md). Argv lists.
	Commands [][]string
	// Actions run once per batch for the changed certificates they match
	// ([[deploy.action]]), in order.
	Actions []Action
}

var deployKeys = []string{"commands", "action"}

// deploy decodes [deploy].
func (d *decoder) deploy(top *table, cfg *Config) {
	t := d.subtable(top, "deploy")
	if t == nil {
		return
	}
	if cmds, ok := d.commands(t); ok {
		cfg.Deploy.Commands = cloneCommands(cmds)
	}
	d.actions(t, cfg)
	d.unknown(t, deployKeys)
}
