// Package webhook is a dns01.Provider that asks an HTTP endpoint of yours
// to add and remove TXT records.
//
// Each change is one POST of a JSON document to URL:
//
//	{"action": "present", "fqdn": "_acme-challenge.example.org.",
//	 "value": "…", "zone": "example.org.", "domain": "example.org"}
//
// with "action": "cleanup" for the removal. FQDN and zone are fully
// qualified (trailing dot); fqdn is a CNAME delegation's target when there
// is one. Any 2xx status means done; anything else fails, with the start
// of the response body in the error. The endpoint must keep other TXT
// values at fqdn (a wildcard and its apex share one name) and must answer
// 2xx to the cleanup of a missing record. Requests carry an optional
// bearer token or basic-auth credentials (never logged).
//
// It does not wait for propagation: dns01.Solver does.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/certfleet/certfleet/solver/dns01"
	"github.com/certfleet/certfleet/solver/dns01/exec"
)

// DefaultTimeout bounds one request.
const DefaultTimeout = 30 * time.Second

// Request is the JSON document POSTed.
type Request struct {
	Action string `json:"action"` // "present" or "cleanup"
	FQDN   string `json:"fqdn"`
	Value  string `json:"value"`
	Zone   string `json:"zone"`
	Domain string `json:"domain"`
}

// Provider posts to URL. Safe for concurrent use.
type Provider struct {
	// URL is the endpoint (https://, or http:// on a trusted network).
	URL string
	// BearerToken, or Username and Password, authenticate the requests.
	// Secrets: never in errors or logs.
	BearerToken        string
	Username, Password string
	// CAPEM are extra root certificates (PEM) trusted for the endpoint;
	// the system roots are trusted too.
	CAPEM []byte
	// Timeout bounds each request. Default DefaultTimeout.
	Timeout time.Duration
	// Client, when set, is used as is (tests); CAPEM and Timeout are then
	// ignored.
	Client *http.Client
}

var _ dns01.Provider = (*Provider)(nil)

// Validate checks the settings without network access.
func (p *Provider) Validate() error {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q is not an http:// or https:// URL", p.URL)
	}
	if u.User != nil {
		return errors.New("url must not carry credentials; use username and password")
	}
	if p.BearerToken != "" && p.Username != "" {
		return errors.New("set either bearer_token or username and password, not both")
	}
	if len(p.CAPEM) > 0 && !x509.NewCertPool().AppendCertsFromPEM(p.CAPEM) {
		return errors.New("ca file holds no PEM certificate")
	}
	return nil
}

// Present posts action "present".
func (p *Provider) Present(ctx context.Context, rec dns01.Record) error {
	return p.post(ctx, "present", rec)
}

// CleanUp posts action "cleanup".
func (p *Provider) CleanUp(ctx context.Context, rec dns01.Record) error {
	return p.post(ctx, "cleanup", rec)
}

func (p *Provider) client() (*http.Client, error) {
	if p.Client != nil {
		return p.Client, nil
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(p.CAPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(p.CAPEM) {
			return nil, errors.New("webhook: ca file holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}

func (p *Provider) post(ctx context.Context, action string, rec dns01.Record) error {
	if err := p.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(Request{Action: action, FQDN: rec.FQDN, Value: rec.Value, Zone: rec.Zone, Domain: rec.Domain})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", p.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case p.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+p.BearerToken)
	case p.Username != "":
		req.SetBasicAuth(p.Username, p.Password)
	}
	c, err := p.client()
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		// *url.Error carries the URL, which has no credentials (Validate).
		return fmt.Errorf("webhook %s %s: %w", action, rec.FQDN, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (check bearer_token or username/password)"
		}
		return fmt.Errorf("webhook %s %s: %s answered %s%s: %s", action, rec.FQDN, p.URL, resp.Status, hint, exec.Tail(msg, 512))
	}
	return nil
}
