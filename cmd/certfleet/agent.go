package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/certfleet/certfleet/agent"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/httpapi"
	"github.com/certfleet/certfleet/staging"
)

func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent", "-config agent.toml [--once] [--staging]", `
Keep this host's certificates in sync with a certfleet server: long-poll
the server, write the files atomically (key first), run the reload commands
once per change, and report what was installed (certfleet status -fleet).
With --once, sync every certificate once and exit: 1 if the server was
unreachable or anything failed (the files on disk are kept). With
--staging, rehearse against a server in test mode: the [staging] server,
outputs under [staging] output_root, state_dir with "-staging", commands
printed unless [staging] run_commands = true. See docs/agent.md.`, stdout, stderr)
	cfgPath := fs.String("config", "", "agent configuration `file` (TOML; see docs/agent.md)")
	once := fs.Bool("once", false, "sync once and exit (for cron)")
	testMode := fs.Bool("staging", false, "test mode: sync from the [staging] server into [staging] output_root, never production's files (see docs/agent.md)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *cfgPath == "" {
		return &exitError{code: 2, err: errors.New("missing -config FILE (see docs/agent.md)")}
	}
	f, err := config.LoadAgent(*cfgPath)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var printCommands io.Writer
	if *testMode {
		if f, err = staging.Agent(f); err != nil {
			return &exitError{code: 2, err: err}
		}
		if !f.Staging.RunCommands {
			printCommands = &lockedWriter{w: stdout}
		}
		fmt.Fprintf(stdout, "test mode: server %s, state %s, outputs under %s\n", f.Server, f.Agent.StateDir, f.Staging.OutputRoot)
	}
	log := newLogger(stderr, f.Log)
	client, err := agentClient(f)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg := agent.Config{Name: f.Agent.Name, StateDir: f.Agent.StateDir, Wait: f.Agent.Wait, Resync: f.Agent.Resync,
		Client: client, Logger: log, PrintCommands: printCommands}
	for _, c := range f.Agent.Certificates {
		cfg.Certificates = append(cfg.Certificates, agent.Certificate{Name: c.Name, Key: c.Key, CSR: c.CSR, KeyType: c.KeyType,
			Identifiers: c.Identifiers, Owner: c.Owner, Group: c.Group, KeyMode: c.KeyMode, CertMode: c.CertMode,
			Commands: c.Commands, CommandTimeout: c.CommandTimeout, RenewFraction: c.RenewFraction,
			Files: agent.Files{Cert: c.Cert, Chain: c.Chain, Fullchain: c.Fullchain, Key: c.PrivKey, Combined: c.Combined}})
	}
	a, err := agent.New(cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if *once {
		if err := a.Once(ctx); err != nil {
			return &exitError{code: 1, err: err}
		}
		return nil
	}
	log.Info("agent started", "agent", a.Name(), "server", f.Server, "certificates", len(cfg.Certificates))
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// agentClient builds the API client: the token from its file, the server's
// roots and the optional client certificate.
func agentClient(f *config.AgentFile) (*httpapi.Client, error) {
	tok, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("%s: token_file: %w", f.File, err)
	}
	token := strings.TrimSpace(string(tok))
	if !strings.HasPrefix(token, "cft_") {
		return nil, fmt.Errorf("%s: token_file %s does not hold a certfleet token (cft_…)", f.File, f.TokenFile)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pemData, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: ca_file: %w", f.File, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("%s: ca_file %s holds no PEM certificate", f.File, f.CAFile)
		}
		tc.RootCAs = pool
	}
	if f.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("%s: client_cert/client_key: %w", f.File, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &httpapi.Client{BaseURL: f.Server, Token: token,
		HTTPClient: &http.Client{Transport: tr, Timeout: httpapi.DefaultMaxWait + 30*time.Second}}, nil
}
