package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/httpapi"
)

// FromFile builds the Config of an agent file (config.LoadAgent): its
// certificates, and the API client with the token read from token_file,
// the server's roots from ca_file and the optional client certificate.
// Errors name the file and the key. Logger and PrintCommands are the
// caller's to set.
func FromFile(f *config.AgentFile) (Config, error) {
	client, err := newClient(f)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Name: f.Agent.Name, StateDir: f.Agent.StateDir, Wait: f.Agent.Wait, Resync: f.Agent.Resync, Client: client}
	for _, c := range f.Agent.Certificates {
		cfg.Certificates = append(cfg.Certificates, Certificate{Name: c.Name, Key: c.Key, CSR: c.CSR, KeyType: c.KeyType,
			Identifiers: c.Identifiers, Owner: c.Owner, Group: c.Group, KeyMode: c.KeyMode, CertMode: c.CertMode,
			Commands: c.Commands, CommandTimeout: c.CommandTimeout, RenewFraction: c.RenewFraction,
			Files: Files{Cert: c.Cert, Chain: c.Chain, Fullchain: c.Fullchain, Key: c.PrivKey, Combined: c.Combined}})
	}
	return cfg, nil
}

// newClient builds the API client of an agent file: the token from its
// file, the server's roots and the optional client certificate.
func newClient(f *config.AgentFile) (*httpapi.Client, error) {
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
