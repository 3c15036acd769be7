// Package staging derives test mode (the --staging flag) from a production
// configuration: the server's (Server) and the agent's (Agent). Each is
// checked twice, by the rules of config.CheckStaging and
// config.CheckAgentStaging as written and again with every path's symlinks
// resolved, so that a rehearsal can never write where production does, not
// even through a symlink.
//
// It runs nothing: the daemon and the agent run the configuration it
// returns, and the rules of what test mode changes (its CA, store, output
// root) live in the config package.
package staging

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/certfleet/certfleet/config"
)

// Server returns the test-mode configuration of prod, checked both as
// written and with symlinks resolved.
func Server(prod *config.Config) (*config.Config, error) {
	cfg, err := prod.StagingConfig()
	if err != nil {
		return nil, err
	}
	if err := checkReal(prod, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkReal is config.CheckStaging on the paths as the kernel will
// resolve them: every path's longest existing prefix has its symlinks
// resolved, so a staging root that is (or lies under) a symlink into a
// production directory is refused too.
func checkReal(prod, staging *config.Config) error {
	resolve := func(c *config.Config) *config.Config {
		r := *c
		r.Certificates = slices.Clone(c.Certificates)
		for i := range r.Certificates {
			o := &r.Certificates[i].Output
			if o.Dir != "" {
				o.Dir = realPath(o.Dir)
			}
			o.Copies = slices.Clone(o.Copies)
			for j := range o.Copies {
				o.Copies[j].Path = realPath(o.Copies[j].Path)
			}
		}
		if !strings.Contains(r.State, "://") {
			r.State = realPath(r.State)
		}
		return &r
	}
	return config.CheckStaging(resolve(prod), resolve(staging))
}

// Agent returns the test-mode agent file of prod, checked both as written
// and with symlinks resolved (a staging root that is, or lies under, a
// symlink into a production directory is refused too).
func Agent(prod *config.AgentFile) (*config.AgentFile, error) {
	s, err := prod.StagingAgent()
	if err != nil {
		return nil, err
	}
	resolve := func(f *config.AgentFile) *config.AgentFile {
		r := *f
		r.Agent.StateDir = realPath(f.Agent.StateDir)
		r.Agent.Certificates = slices.Clone(f.Agent.Certificates)
		for i := range r.Agent.Certificates {
			c := &r.Agent.Certificates[i]
			for _, p := range []*string{&c.Cert, &c.Chain, &c.Fullchain, &c.PrivKey, &c.Combined} {
				if *p != "" {
					*p = realPath(*p)
				}
			}
		}
		return &r
	}
	if err := config.CheckAgentStaging(resolve(prod), resolve(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// realPath resolves the symlinks of p's longest existing prefix.
func realPath(p string) string {
	rest := ""
	for dir := filepath.Clean(p); ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		if parent := filepath.Dir(dir); parent == dir {
			return p
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}
