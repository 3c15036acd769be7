package selftest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/solver/answers"
	"github.com/certfleet/certfleet/solver/http01"
)

// maxRedirects is how many redirects the probe follows, as Let's
// Encrypt's validator does (RFC 8555 §8.3 leaves the number to the CA:
// "the server ... MAY follow redirects"; Boulder follows 10).
const maxRedirects = 10

// testHTTP stores a probe token where every certfleet responder answers
// it, and fetches http://NAME/.well-known/acme-challenge/TOKEN the way the
// CA would (RFC 8555 §8.3): NAME resolved through the configured
// resolvers, port 80, redirects followed to http or https on ports 80 and
// 443 only. The answer must be the probe's key authorization: only a
// certfleet responder can give it.
func (t *Tester) testHTTP(ctx context.Context, id certfleet.Identifier) (string, string) {
	if t.Store == nil {
		return certfleet.WaitProbe, "the http-01 self-test has no store for its probe token"
	}
	host := id.Value
	var addrs []string
	if id.Type == certfleet.IdentifierIP {
		addrs = []string{id.Value}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	} else {
		var err error
		if addrs, err = t.resolver().Addrs(ctx, id.Value); err != nil {
			return certfleet.WaitDNS, fmt.Sprintf("%s does not resolve (%v): give it an A or AAAA record that points at certfleet or at the proxy in front of it", id.Value, err)
		}
	}
	token := probeSecret("certfleet-probe-")
	keyAuth := probeSecret("certfleet-probe-answer-")
	tok := certfleet.ChallengeToken{Type: certfleet.ChallengeHTTP01, Key: token, KeyAuthorization: keyAuth, Expires: t.now().Add(probeTTL)}
	// Stored as the solvers store answers: retried through a database
	// restart (a name waits for its next self-test otherwise, 30 s), and
	// announced to every instance before the probe (issue 16).
	if err := answers.Publish(ctx, t.Store, tok, 0); err != nil {
		return certfleet.WaitProbe, fmt.Sprintf("cannot store the http-01 probe token: %v", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = t.Store.DeleteChallenge(cctx, certfleet.ChallengeHTTP01, token)
	}()
	probe := "http://" + host + http01.PathPrefix + token
	shown := "http://" + host + http01.PathPrefix + "<probe>"
	client := t.httpClient()
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, probe, nil)
	if err != nil {
		return certfleet.WaitProbe, fmt.Sprintf("probe request for %s: %v", id.Value, err)
	}
	req.Header.Set("User-Agent", "certfleet-selftest (ACME http-01 pre-check)")
	resp, err := client.Do(req)
	if err != nil {
		var redirect *redirectError
		if errors.As(err, &redirect) {
			return certfleet.WaitHTTP, fmt.Sprintf("%s redirects where a CA does not follow (%s): redirect %s to certfleet over http or https on port 80 or 443",
				shown, redirect.msg, http01.PathPrefix)
		}
		return certfleet.WaitDNS, fmt.Sprintf("%s resolves to %s, and %s did not reach certfleet there (%s): point %s at certfleet, or forward port 80 of that address to it",
			id.Value, fmtAddrs(addrs), shown, cause(err), id.Value)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK && strings.TrimRight(string(body), " \t\r\n") == keyAuth {
		return "", ""
	}
	via := ""
	if final := resp.Request.URL.String(); final != probe {
		via = " (redirected to " + strings.Replace(final, token, "<probe>", 1) + ")"
	}
	server := ""
	if s := resp.Header.Get("Server"); s != "" {
		server = ", server " + strconv.Quote(s)
	}
	return certfleet.WaitHTTP, fmt.Sprintf("%s resolves to %s, but %s%s answered %s%s, not certfleet's probe: forward %s on that server to certfleet (a proxy rule or a 301 to certfleet)",
		id.Value, fmtAddrs(addrs), shown, via, resp.Status, server, http01.PathPrefix)
}

// redirectError is a redirect the CA would refuse to follow.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// httpClient fetches like a CA's validator: names resolved through the
// configured resolvers, port 80 (and 443 after a redirect to https) mapped
// to HTTPPort and TLSPort, any certificate accepted on an https redirect
// (Let's Encrypt's validator does not check it: the key authorization is
// the proof), at most maxRedirects redirects, to http or https on the
// default ports only.
func (t *Tester) httpClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		switch port {
		case "80":
			port = strconv.Itoa(t.port(t.HTTPPort, 80))
		case "443":
			port = strconv.Itoa(t.port(t.TLSPort, 443))
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			if ips, err = t.resolver().Addrs(ctx, host); err != nil {
				return nil, err
			}
		}
		var errs []error
		for _, ip := range ips {
			c, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip, port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         dial,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the CA: the key authorization is the proof
			DisableKeepAlives:   true,
			TLSHandshakeTimeout: 5 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return &redirectError{fmt.Sprintf("more than %d redirects", maxRedirects)}
			}
			u := req.URL
			if u.Scheme != "http" && u.Scheme != "https" {
				return &redirectError{"to scheme " + u.Scheme}
			}
			if p := u.Port(); p != "" && p != "80" && p != "443" {
				return &redirectError{"to port " + p + " of " + redactURL(u)}
			}
			return nil
		},
	}
}

func (t *Tester) port(set, def int) int {
	if set > 0 {
		return set
	}
	return def
}

func redactURL(u *url.URL) string { return u.Scheme + "://" + u.Host }

// cause returns the innermost useful part of a client error.
func cause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
