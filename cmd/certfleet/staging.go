package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/certfleet/certfleet/config"
)

const stagingFlagHelp = "test mode: rehearse against the [staging] CA, with its own store, accounts, keys and output root (never production's; see docs/deploy.md)"

// openStagingFor returns an opener of test-mode daemons: the config's
// StagingConfig (checked by config.CheckStaging before anything is opened),
// with commands printed to stdout unless [staging] run_commands is set.
func openStagingFor(stdout io.Writer) func(ctx context.Context, path string, stderr io.Writer) (*Daemon, error) {
	return func(ctx context.Context, path string, stderr io.Writer) (*Daemon, error) {
		prod, err := loadConfig(path)
		if err != nil {
			return nil, err
		}
		cfg, err := stagingOf(prod)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		opts := DaemonOptions{Logger: newLogger(stderr, cfg.Log), StartResponders: true}
		if !cfg.Staging.RunCommands {
			opts.PrintCommands = &lockedWriter{w: stdout}
		}
		fmt.Fprintf(stdout, "test mode: CA %s, state %s, outputs under %s\n", cfg.Staging.Directory, cfg.State, cfg.Staging.OutputRoot)
		return OpenDaemon(ctx, cfg, opts)
	}
}

// lockedWriter serialises writes from concurrent deploys.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stagingOf returns the test-mode configuration of prod, checked both as
// written and with symlinks resolved.
func stagingOf(prod *config.Config) (*config.Config, error) {
	cfg, err := prod.StagingConfig()
	if err != nil {
		return nil, err
	}
	if err := checkStagingReal(prod, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkStagingReal is config.CheckStaging on the paths as the kernel will
// resolve them: every path's longest existing prefix has its symlinks
// resolved, so a staging root that is (or lies under) a symlink into a
// production directory is refused too.
func checkStagingReal(prod, staging *config.Config) error {
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
