package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a certfleet API server with a bearer token. It is what
// the agent uses. Errors from the server are *Problem (errors.As).
// Safe for concurrent use.
type Client struct {
	// BaseURL is the server, e.g. "https://certfleet.example.net:8555".
	BaseURL string
	// Token is the bearer token (cft_…). Never logged.
	Token string
	// HTTPClient defaults to a client with a timeout a little longer than
	// the longest long-poll.
	HTTPClient *http.Client
}

var defaultClient = &http.Client{Timeout: DefaultMaxWait + 30*time.Second}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultClient
}

// FetchOptions tune GET requests.
type FetchOptions struct {
	// Key picks among dual certificates: "rsa" or "ecdsa".
	Key string
	// Wait long-polls: the server answers when the document differs from
	// ETag (or exists at all), or when Wait is over.
	Wait time.Duration
	// ETag is the ETag of the copy the caller has (If-None-Match).
	ETag string
}

func (o FetchOptions) query() url.Values {
	q := url.Values{}
	if o.Key != "" {
		q.Set("key", o.Key)
	}
	if o.Wait > 0 {
		q.Set("wait", o.Wait.String())
	}
	return q
}

// do sends a request and returns the response for 2xx and 304; any other
// status becomes a *Problem.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, hdr http.Header, body []byte) (*http.Response, []byte, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("certfleet API: %s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("certfleet API: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("certfleet API: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		return resp, data, nil
	}
	p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.HasSuffix(mt, "json") {
		_ = json.Unmarshal(data, p)
	}
	if p.Detail == "" {
		p.Detail = fmt.Sprintf("%s %s answered %s", method, path, resp.Status)
	}
	return resp, data, p
}

func namePath(name, sub string) string {
	p := "/v1/names/" + url.PathEscape(name)
	if sub != "" {
		p += "/" + sub
	}
	return p
}

func decodeStatus(resp *http.Response, data []byte) (NameStatus, error) {
	var st NameStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("certfleet API: %s: decode status: %w", resp.Request.URL.Path, err)
	}
	return st, nil
}

// PutName requests a certificate for name; req may be nil.
func (c *Client) PutName(ctx context.Context, name string, req *NameRequest) (NameStatus, error) {
	var body []byte
	hdr := http.Header{}
	if req != nil {
		body, _ = json.Marshal(req)
		hdr.Set("Content-Type", "application/json")
	}
	resp, data, err := c.do(ctx, http.MethodPut, namePath(name, ""), nil, hdr, body)
	if err != nil {
		return NameStatus{}, err
	}
	return decodeStatus(resp, data)
}

// SubmitCSR requests name in CSR mode with a PEM certificate request.
func (c *Client) SubmitCSR(ctx context.Context, name string, csrPEM []byte) (NameStatus, error) {
	resp, data, err := c.do(ctx, http.MethodPost, namePath(name, "csr"), nil, http.Header{"Content-Type": {"application/pkcs10"}}, csrPEM)
	if err != nil {
		return NameStatus{}, err
	}
	return decodeStatus(resp, data)
}

// DeleteName withdraws name; revoke also revokes its certificate at the CA
// and destroys its key.
func (c *Client) DeleteName(ctx context.Context, name string, revoke bool) error {
	q := url.Values{}
	if revoke {
		q.Set("revoke", "true")
	}
	_, _, err := c.do(ctx, http.MethodDelete, namePath(name, ""), q, nil, nil)
	return err
}

// Retry asks for name's certificate now: the answer's Retry says what
// was done per key type. A certificate that is valid and not due is not
// renewed: the error is a *Problem (409, ECONFLICT) saying until when it
// is valid and when it is renewed; Renew renews it anyway.
func (c *Client) Retry(ctx context.Context, name string) (NameStatus, error) {
	resp, data, err := c.do(ctx, http.MethodPost, namePath(name, "retry"), nil, nil, nil)
	if err != nil {
		return NameStatus{}, err
	}
	return decodeStatus(resp, data)
}

// Renew orders a new certificate for name now, even if the current one
// is not due (POST …/retry?force=true).
func (c *Client) Renew(ctx context.Context, name string) (NameStatus, error) {
	resp, data, err := c.do(ctx, http.MethodPost, namePath(name, "retry"), url.Values{"force": {"true"}}, nil, nil)
	if err != nil {
		return NameStatus{}, err
	}
	return decodeStatus(resp, data)
}

// Status returns name's status and its ETag; with o.Wait and o.ETag it
// long-polls for a change (NotModified: unchanged when the wait ended).
func (c *Client) Status(ctx context.Context, name string, o FetchOptions) (st NameStatus, etag string, notModified bool, err error) {
	hdr := http.Header{}
	if o.ETag != "" {
		hdr.Set("If-None-Match", o.ETag)
	}
	resp, data, err := c.do(ctx, http.MethodGet, namePath(name, "status"), o.query(), hdr, nil)
	if err != nil {
		return st, "", false, err
	}
	if resp.StatusCode == http.StatusNotModified {
		return st, o.ETag, true, nil
	}
	st, err = decodeStatus(resp, data)
	return st, resp.Header.Get("ETag"), false, err
}

// WaitIssued long-polls name's status until every key type has a
// certificate, or ctx ends.
func (c *Client) WaitIssued(ctx context.Context, name string) (NameStatus, error) {
	var etag string
	for {
		st, tag, nm, err := c.Status(ctx, name, FetchOptions{Wait: 30 * time.Second, ETag: etag})
		if err != nil {
			return st, err
		}
		if !nm {
			if st.Issued {
				return st, nil
			}
			etag = tag
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
	}
}

// PEM is a fetched PEM document.
type PEM struct {
	Data        []byte
	ETag        string
	NotModified bool // o.ETag is still current; Data is nil
}

// Fetch gets one PEM document of name: part is "cert", "chain",
// "fullchain" or "privkey".
func (c *Client) Fetch(ctx context.Context, name, part string, o FetchOptions) (PEM, error) {
	hdr := http.Header{}
	if o.ETag != "" {
		hdr.Set("If-None-Match", o.ETag)
	}
	resp, data, err := c.do(ctx, http.MethodGet, namePath(name, part), o.query(), hdr, nil)
	if err != nil {
		return PEM{}, err
	}
	if resp.StatusCode == http.StatusNotModified {
		return PEM{ETag: o.ETag, NotModified: true}, nil
	}
	return PEM{Data: data, ETag: resp.Header.Get("ETag")}, nil
}

// Bud returns the answer Bud's SNI backend gets for name: one certificate
// chain and key each, or two for a dual certificate.
func (c *Client) Bud(ctx context.Context, name string) (certs, keys []string, err error) {
	_, data, err := c.do(ctx, http.MethodGet, namePath(name, "bud"), nil, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	var raw struct{ Cert, Key json.RawMessage }
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, nil, fmt.Errorf("certfleet API: bud: %w", err)
	}
	one := func(m json.RawMessage) ([]string, error) {
		var s string
		if json.Unmarshal(m, &s) == nil {
			return []string{s}, nil
		}
		var l []string
		err := json.Unmarshal(m, &l)
		return l, err
	}
	if certs, err = one(raw.Cert); err == nil {
		keys, err = one(raw.Key)
	}
	return certs, keys, err
}

// Certificates returns a page of the certificates in the token's scope,
// after the given name (""  for the first page); limit 0 is the server's
// default.
func (c *Client) Certificates(ctx context.Context, after string, limit int) (CertificateList, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var list CertificateList
	_, data, err := c.do(ctx, http.MethodGet, "/v1/certificates", q, nil, nil)
	if err != nil {
		return list, err
	}
	return list, json.Unmarshal(data, &list)
}

// Certificate returns one certificate by name.
func (c *Client) Certificate(ctx context.Context, name string) (CertificateInfo, error) {
	var info CertificateInfo
	_, data, err := c.do(ctx, http.MethodGet, "/v1/certificates/"+url.PathEscape(name), nil, nil, nil)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(data, &info)
}

// Report tells the server what agent installed for r.Name
// (POST /v1/agents/{agent}/report).
func (c *Client) Report(ctx context.Context, agent string, r ReportRequest) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("certfleet API: encode report: %w", err)
	}
	_, _, err = c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(agent)+"/report", nil, http.Header{"Content-Type": {"application/json"}}, body)
	return err
}

// JSON sends in (nil for no body) as a JSON request to path and decodes
// the answer into out (nil to ignore it): the administration endpoints
// (tenants, their tokens, accounts) and any other JSON endpoint.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	var (
		body []byte
		hdr  http.Header
	)
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("certfleet API: %s %s: encode: %w", method, path, err)
		}
		hdr = http.Header{"Content-Type": {"application/json"}}
	}
	_, data, err := c.do(ctx, method, path, nil, hdr, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("certfleet API: %s %s: decode: %w", method, path, err)
	}
	return nil
}

// PutTenant creates tenant name, or replaces its settings.
func (c *Client) PutTenant(ctx context.Context, name string, req TenantRequest) (TenantInfo, error) {
	var info TenantInfo
	return info, c.JSON(ctx, http.MethodPut, "/v1/tenants/"+url.PathEscape(name), req, &info)
}

// CreateTenantToken creates a token bound to tenant; the answer holds its
// secret, shown this once.
func (c *Client) CreateTenantToken(ctx context.Context, tenant string, req TokenRequest) (TokenCreated, error) {
	var tok TokenCreated
	return tok, c.JSON(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(tenant)+"/tokens", req, &tok)
}

// PutAccount declares the ACME account name, or replaces it.
func (c *Client) PutAccount(ctx context.Context, name string, req AccountRequest) (AccountInfo, error) {
	var info AccountInfo
	return info, c.JSON(ctx, http.MethodPut, "/v1/accounts/"+url.PathEscape(name), req, &info)
}

// EnrollIdentity enrolls a host (POST /v1/identities/enroll) with a
// one-time enrollment token (cfe_…, sent instead of c.Token) and the PEM
// CSR of a key made on the host.
func (c *Client) EnrollIdentity(ctx context.Context, enrollToken, name string, csrPEM []byte) (IdentityIssued, error) {
	cc := *c
	cc.Token = enrollToken
	var out IdentityIssued
	err := cc.JSON(ctx, http.MethodPost, "/v1/identities/enroll", IdentityRequest{Name: name, CSR: string(csrPEM)}, &out)
	return out, err
}

// RenewIdentity renews the client certificate the HTTP client presents
// (POST /v1/identities/renew) for the key of a new PEM CSR. c.Token must
// be empty: the client certificate is the credential.
func (c *Client) RenewIdentity(ctx context.Context, csrPEM []byte) (IdentityIssued, error) {
	var out IdentityIssued
	err := c.JSON(ctx, http.MethodPost, "/v1/identities/renew", IdentityRequest{CSR: string(csrPEM)}, &out)
	return out, err
}
