package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/httpapi"
)

// FromFile builds the Config of an agent file (config.LoadAgent): its
// certificates, and the API client with the host identity kept in
// state_dir/identity or else the token read from token_file, the server's
// roots from ca_file and the optional client certificate.
// Errors name the file and the key. Logger and PrintCommands are the
// caller's to set.
func FromFile(f *config.AgentFile) (Config, error) {
	client, id, err := newClient(f)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Name: f.Agent.Name, StateDir: f.Agent.StateDir, Wait: f.Agent.Wait, Resync: f.Agent.Resync, Client: client, Identity: id}
	for _, c := range f.Agent.Certificates {
		cfg.Certificates = append(cfg.Certificates, Certificate{Name: c.Name, Key: c.Key, CSR: c.CSR, KeyType: c.KeyType,
			Identifiers: c.Identifiers, Owner: c.Owner, Group: c.Group, KeyMode: c.KeyMode, CertMode: c.CertMode,
			Commands: c.Commands, CommandTimeout: c.CommandTimeout, RenewFraction: c.RenewFraction,
			Files: Files{Cert: c.Cert, Chain: c.Chain, Fullchain: c.Fullchain, Key: c.PrivKey, Combined: c.Combined}})
	}
	return cfg, nil
}

// newClient builds the API client of an agent file: the server's roots
// and the optional client certificate, and the credential — the host
// identity kept in state_dir/identity when the host enrolled, else the
// token from token_file. identity is nil for a token.
func newClient(f *config.AgentFile) (client *httpapi.Client, identity *Identity, err error) {
	client, tc, err := newBareClient(f)
	if err != nil {
		return nil, nil, err
	}
	identity, err = LoadIdentity(filepath.Join(f.Agent.StateDir, IdentityDirName))
	switch {
	case err == nil:
		if f.ClientCert != "" {
			return nil, nil, fmt.Errorf("%s: client_cert is set, and this host has a host identity in %s: keep one of them", f.File, identity.Dir)
		}
		tc.GetClientCertificate = identity.GetClientCertificate
		return client, identity, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, err
	}
	if f.TokenFile == "" {
		return nil, nil, fmt.Errorf("%s: no token_file, and no host identity in %s: enroll this host (certfleet agent -config %s --enroll-token TOKEN, with a token from certfleet identity enroll-token) or set token_file",
			f.File, filepath.Join(f.Agent.StateDir, IdentityDirName), f.File)
	}
	tok, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: token_file: %w", f.File, err)
	}
	token := strings.TrimSpace(string(tok))
	if !strings.HasPrefix(token, "cft_") {
		return nil, nil, fmt.Errorf("%s: token_file %s does not hold a certfleet token (cft_…)", f.File, f.TokenFile)
	}
	client.Token = token
	return client, nil, nil
}

// newBareClient builds the API client of an agent file without a
// credential: the server's roots from ca_file and the optional client
// certificate; it returns the client's TLS config to add one.
func newBareClient(f *config.AgentFile) (*httpapi.Client, *tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pemData, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: ca_file: %w", f.File, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, nil, fmt.Errorf("%s: ca_file %s holds no PEM certificate", f.File, f.CAFile)
		}
		tc.RootCAs = pool
	}
	if f.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: client_cert/client_key: %w", f.File, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &httpapi.Client{BaseURL: f.Server, HTTPClient: &http.Client{Transport: tr, Timeout: httpapi.DefaultMaxWait + 30*time.Second}}, tc, nil
}

// EnrollFile enrolls the host of an agent file with a one-time enrollment
// token (certfleet agent --enroll-token): the identity goes to
// state_dir/identity, named as the agent (its host name by default).
func EnrollFile(ctx context.Context, f *config.AgentFile, enrollToken string) (*Identity, error) {
	client, _, err := newBareClient(f)
	if err != nil {
		return nil, err
	}
	name := f.Agent.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("agent: no name given and the host name is unknown: %w", err)
		}
	}
	if f.Agent.StateDir == "" {
		return nil, fmt.Errorf("%s: enrollment keeps the host identity in state_dir: set it", f.File)
	}
	return Enroll(ctx, client, filepath.Join(f.Agent.StateDir, IdentityDirName), strings.TrimSpace(enrollToken), name)
}
