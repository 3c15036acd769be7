package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
)

// AgentFile is a parsed agent configuration file (certfleet agent -config).
// Secrets stay in files: TokenFile is read by the command, never here.
type AgentFile struct {
	File string
	// Server is the certfleet API's base URL.
	Server string
	// TokenFile holds the bearer token (one line); readable by the agent's
	// user only. "" when the agent authenticates with its host identity
	// (a client certificate in state_dir/identity; issue 17).
	TokenFile string
	// CAFile: PEM roots for the server's TLS; "" uses the system roots.
	CAFile string
	// ClientCert and ClientKey: a TLS client certificate (mTLS) for the
	// server or a proxy in front of it; both or neither.
	ClientCert, ClientKey string
	// Log is as in the server's file.
	Log Log
	// Agent is the agent's configuration, as agent.Config has it (the
	// command builds the client from the fields above). config does not
	// import agent, which speaks HTTP.
	Agent AgentConfig
	// Staging is the agent's test mode ([staging]; certfleet agent
	// --staging); see StagingAgent.
	Staging AgentStaging
}

// AgentStaging is an agent's [staging] table: a rehearsal against a
// certfleet server in test mode (serve --staging with [staging] api_listen).
type AgentStaging struct {
	// Server is the test-mode server's API URL; required for --staging,
	// and never the production Server.
	Server string
	// TokenFile holds a token of the staging store (certfleet token
	// create --staging); default the production token_file, which a
	// staging server refuses unless the same token was made there.
	TokenFile string
	// CAFile: PEM roots for the staging server's TLS; default CAFile.
	CAFile string
	// OutputRoot is the directory every output path is re-rooted under
	// (/etc/ssl/www.pem → OUTPUT_ROOT/etc/ssl/www.pem); required for
	// --staging.
	OutputRoot string
	// RunCommands runs the reload commands in test mode; when false (the
	// default) they are printed instead.
	RunCommands bool
}

// StagingSuffix is appended to the agent's state_dir in test mode, so that
// the rehearsal's CSR-mode keys and state never mix with production's.
const StagingSuffix = "-staging"

// StagingAgent returns the agent file of a test-mode run: Server,
// TokenFile and CAFile from [staging], state_dir with StagingSuffix, and
// every output path re-rooted under [staging] output_root (as the server
// re-roots a path outside its [defaults] output directory). It fails when
// [staging] lacks server or output_root, or when CheckAgentStaging refuses
// the result.
func (f *AgentFile) StagingAgent() (*AgentFile, error) {
	st := f.Staging
	var missing []string
	if st.Server == "" {
		missing = append(missing, "[staging] server (the URL of the certfleet API in test mode: serve --staging with [staging] api_listen)")
	}
	if st.OutputRoot == "" {
		missing = append(missing, "[staging] output_root (where test-mode files are written)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: agent test mode needs %s", f.File, strings.Join(missing, " and "))
	}
	s := *f
	s.Server = st.Server
	if st.TokenFile != "" {
		s.TokenFile = st.TokenFile
	}
	if st.CAFile != "" {
		s.CAFile = st.CAFile
	}
	s.Agent.StateDir = filepath.Clean(f.Agent.StateDir) + StagingSuffix
	s.Agent.Certificates = make([]AgentCertificate, len(f.Agent.Certificates))
	for i, c := range f.Agent.Certificates {
		for _, p := range []*string{&c.Cert, &c.Chain, &c.Fullchain, &c.PrivKey, &c.Combined} {
			if *p != "" {
				*p = filepath.Join(st.OutputRoot, *p)
			}
		}
		c.Commands = cloneCommands(c.Commands)
		s.Agent.Certificates[i] = c
	}
	if err := CheckAgentStaging(f, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// AgentOutputPaths lists the files the agent writes.
func (f *AgentFile) AgentOutputPaths() []string {
	var out []string
	for _, c := range f.Agent.Certificates {
		for _, p := range []string{c.Cert, c.Chain, c.Fullchain, c.PrivKey, c.Combined} {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// CheckAgentStaging verifies that an agent's test-mode file cannot touch
// production: its server differs from production's, its state_dir
// overlaps neither production's state_dir nor its outputs, and none of its output paths equals, contains
// or lies inside a production output path. The check is lexical;
// cmd/certfleet repeats it with symlinks resolved.
func CheckAgentStaging(prod, staging *AgentFile) error {
	var errs []error
	if strings.TrimSuffix(staging.Server, "/") == strings.TrimSuffix(prod.Server, "/") {
		errs = append(errs, fmt.Errorf("the staging server %s is the production server; set [staging] server to the test-mode API (serve --staging, [staging] api_listen)", staging.Server))
	}
	if overlaps(staging.Agent.StateDir, prod.Agent.StateDir) {
		errs = append(errs, fmt.Errorf("the staging state_dir %s overlaps the production state_dir %s", staging.Agent.StateDir, prod.Agent.StateDir))
	}
	prodPaths := prod.AgentOutputPaths()
	for _, p := range prodPaths {
		if overlaps(staging.Agent.StateDir, p) {
			errs = append(errs, fmt.Errorf("the staging state_dir %s overlaps the production output %s; move state_dir", staging.Agent.StateDir, p))
		}
	}
	for _, sp := range staging.AgentOutputPaths() {
		for _, p := range prodPaths {
			if overlaps(sp, p) {
				errs = append(errs, fmt.Errorf("the staging output %s overlaps the production output %s; set [staging] output_root to a directory outside every production output", sp, p))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("agent test mode refused, to protect production files: %w", errors.Join(errs...))
	}
	return nil
}

// AgentConfig mirrors agent.Config's plain fields; see there.
type AgentConfig struct {
	Name, StateDir string
	Wait, Resync   time.Duration
	Certificates   []AgentCertificate
}

// AgentCertificate mirrors agent.Certificate; see there.
type AgentCertificate struct {
	Name, Key                                 string
	CSR                                       bool
	KeyType                                   certfleet.KeyType
	Identifiers                               []string
	Cert, Chain, Fullchain, PrivKey, Combined string
	Owner, Group                              string
	KeyMode, CertMode                         fs.FileMode
	Commands                                  [][]string
	CommandTimeout                            time.Duration
	RenewFraction                             float64
}

var (
	agentTopKeys     = []string{"server", "token_file", "ca_file", "client_cert", "client_key", "name", "state_dir", "wait", "resync", "log", "certificate", "staging"}
	agentStagingKeys = []string{"server", "token_file", "ca_file", "output_root", "run_commands"}
	agentCertKeys    = []string{"name", "key", "csr", "key_type", "identifiers", "cert", "chain", "fullchain", "privkey", "combined",
		"owner", "group", "key_mode", "cert_mode", "commands", "command_timeout", "renew_fraction"}
)

// LoadAgent reads and parses an agent configuration file. Every problem is
// reported in an *Error, with file, line and field.
func LoadAgent(path string) (*AgentFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return ParseAgent(path, data)
}

// ParseAgent parses an agent configuration file's contents; relative paths
// are relative to filename's directory.
func ParseAgent(filename string, data []byte) (*AgentFile, error) {
	f, err := decode(filename, data, (*decoder).agentFile)
	if err != nil {
		return nil, err
	}
	f.File = filename
	return f, nil
}

func (d *decoder) path(t *table, key string) string {
	s, p, ok := d.str(t, key)
	if !ok || s == "" {
		return ""
	}
	abs, _ := d.abs(p, s)
	return abs
}

func (d *decoder) agentFile(doc map[string]any) *AgentFile {
	top := newTable(doc, nil)
	defer d.unknown(top, agentTopKeys)
	f := &AgentFile{Log: Log{Format: "text"}}
	if s, p, ok := d.str(top, "server"); !ok {
		d.problemf(p, "required: the certfleet API's URL, as in \"https://certfleet.example.net:8555\"")
	} else if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		d.problemf(p, "%q: give an http:// or https:// URL", s)
	} else {
		f.Server = strings.TrimSuffix(s, "/")
	}
	// Without token_file the agent authenticates with its host identity
	// (state_dir/identity, made by certfleet agent --enroll-token);
	// agent.FromFile says what to do when it has neither.
	f.TokenFile = d.path(top, "token_file")
	f.CAFile = d.path(top, "ca_file")
	f.ClientCert, f.ClientKey = d.path(top, "client_cert"), d.path(top, "client_key")
	if (f.ClientCert == "") != (f.ClientKey == "") {
		d.problemf(top.p.key("client_cert"), "give client_cert and client_key together")
	}
	if s, p, ok := d.str(top, "name"); ok {
		if err := certfleet.ValidateAgentName(s); err != nil {
			d.problemf(p, "%v", err)
		}
		f.Agent.Name = s
	}
	f.Agent.StateDir = "/var/lib/certfleet-agent"
	if s := d.path(top, "state_dir"); s != "" {
		f.Agent.StateDir = s
	}
	if s, p, ok := d.str(top, "wait"); ok {
		f.Agent.Wait = d.duration(p, s)
	}
	if s, p, ok := d.str(top, "resync"); ok {
		f.Agent.Resync = d.duration(p, s)
	}
	if t := d.subtable(top, "log"); t != nil {
		d.log(t, &f.Log)
	}
	if t := d.subtable(top, "staging"); t != nil {
		d.agentStaging(t, &f.Staging)
	}
	v, p, ok := d.get(top, "certificate")
	if !ok {
		d.problemf(p, "no [[certificate]]: list the certificates this host needs")
		return f
	}
	arr, ok := asArray(v)
	if !ok {
		d.problemf(p, "must be an array of tables: write each certificate under its own [[certificate]] header")
		return f
	}
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			d.problemf(p.index(i), "must be a table, not %s", typeName(e))
			continue
		}
		if c, ok := d.agentCertificate(newTable(m, p.index(i))); ok {
			f.Agent.Certificates = append(f.Agent.Certificates, c)
		}
	}
	return f
}

func (d *decoder) agentCertificate(t *table) (AgentCertificate, bool) {
	start := d.mark()
	defer d.unknown(t, agentCertKeys)
	var c AgentCertificate
	if s, p, ok := d.str(t, "name"); !ok {
		d.problemf(p, "required: a name of the certificate, as the server knows it")
	} else if id, err := certfleet.ParseIdentifier(s); err != nil {
		d.problemf(p, "%v", err)
	} else {
		c.Name = id.Value
	}
	if s, p, ok := d.str(t, "key"); ok {
		if s != "rsa" && s != "ecdsa" {
			d.problemf(p, "%q: use rsa or ecdsa (which of a dual certificate)", s)
		}
		c.Key = s
	}
	if v, p, ok := d.get(t, "csr"); ok {
		b, isBool := v.(bool)
		if !isBool {
			d.problemf(p, "must be true or false, not %s", typeName(v))
		}
		c.CSR = b
	}
	if s, p, ok := d.str(t, "key_type"); ok {
		kt, err := certfleet.ParseKeyType(s)
		if err != nil {
			d.problemf(p, "%v", err)
		}
		c.KeyType = kt
	}
	if ids, paths, _, ok := d.strList(t, "identifiers"); ok {
		for i, s := range ids {
			id, err := certfleet.ParseIdentifier(s)
			if err != nil {
				d.problemf(paths[i], "%v", err)
				continue
			}
			c.Identifiers = append(c.Identifiers, id.Value)
		}
	}
	c.Cert, c.Chain, c.Fullchain = d.path(t, "cert"), d.path(t, "chain"), d.path(t, "fullchain")
	c.PrivKey, c.Combined = d.path(t, "privkey"), d.path(t, "combined")
	if c.Cert == "" && c.Chain == "" && c.Fullchain == "" && c.PrivKey == "" && c.Combined == "" {
		d.problemf(t.p, "no files: set cert, chain, fullchain, privkey or combined")
	}
	if c.CSR && c.PrivKey == "" && c.Combined == "" {
		d.problemf(t.p.key("csr"), "CSR mode makes the key on this host: set privkey or combined to say where it goes")
	}
	c.Owner, _ = d.principal(t, "owner")
	c.Group, _ = d.principal(t, "group")
	c.KeyMode, _ = d.keyMode(t)
	if s, p, ok := d.str(t, "cert_mode"); ok {
		var m uint32
		if _, err := fmt.Sscanf(s, "%o", &m); err != nil || m > 0o777 {
			d.problemf(p, "%q is not an octal file mode; write it as \"0644\"", s)
		}
		c.CertMode = fs.FileMode(m)
	}
	c.Commands, _ = d.commands(t)
	if s, p, ok := d.str(t, "command_timeout"); ok {
		c.CommandTimeout = d.duration(p, s)
	}
	if v, p, ok := d.get(t, "renew_fraction"); ok {
		f, isFloat := v.(float64)
		if !isFloat || f <= 0 || f >= 1 {
			d.problemf(p, "must be a number between 0 and 1, as in 0.5")
		}
		c.RenewFraction = f
	}
	return c, d.mark() == start
}

// agentStaging decodes an agent's [staging].
func (d *decoder) agentStaging(t *table, st *AgentStaging) {
	defer d.unknown(t, agentStagingKeys)
	if s, p, ok := d.str(t, "server"); ok {
		if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
			d.problemf(p, "%q: give the http:// or https:// URL of the test-mode API", s)
		}
		st.Server = strings.TrimSuffix(s, "/")
	}
	st.TokenFile = d.path(t, "token_file")
	st.CAFile = d.path(t, "ca_file")
	if s, p, ok := d.str(t, "output_root"); ok {
		if s == "" {
			d.problemf(p, "must not be empty: give the directory test-mode files are written under")
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
}
