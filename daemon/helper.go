package daemon

// Prepare helpers and [[deploy.action]]: the configuration mapped onto
// deploy's types, and the readiness checks that need the network (deploy
// fetches nothing).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/deploy"
)

// readyProbeTimeout bounds one readiness probe; deploy repeats it every
// 100 ms until the helper's ready_timeout.
const readyProbeTimeout = 2 * time.Second

// hooksOf maps a certificate's prepare, prepare_helpers and cleanup onto
// deploy's.
func hooksOf(c config.Certificate) (deploy.Hooks, error) {
	h := deploy.Hooks{Prepare: c.Prepare, Cleanup: c.Cleanup}
	for i, ch := range c.Helpers {
		dh := deploy.Helper{Argv: ch.Command, PerName: ch.PerName, ReadyTimeout: ch.ReadyTimeout, StopGrace: ch.StopGrace}
		switch {
		case ch.ReadyLine != "":
			re, err := regexp.Compile(ch.ReadyLine)
			if err != nil { // config.Parse refuses it; a Config built otherwise may not
				return h, fmt.Errorf("certificate %s: prepare_helpers[%d] ready_line: %w", c.Spec.Name, i, err)
			}
			dh.ReadyLine = re
		case ch.ReadyTCP != "":
			dh.Ready, dh.ReadyDescription = tcpReady(ch.ReadyTCP), "connection to ready_tcp "+ch.ReadyTCP
		case ch.ReadyURL != "":
			dh.Ready, dh.ReadyDescription = urlReady(ch.ReadyURL), "answer from ready_url "+ch.ReadyURL
		}
		h.Helpers = append(h.Helpers, dh)
	}
	return h, nil
}

// actionsOf maps [[deploy.action]] onto deploy's.
func actionsOf(cfg *config.Config) []deploy.Action {
	out := make([]deploy.Action, len(cfg.Deploy.Actions))
	for i, a := range cfg.Deploy.Actions {
		out[i] = deploy.Action{Name: a.Name, Identifiers: a.Identifiers, Unmatched: a.Unmatched, Commands: a.Commands}
	}
	return out
}

// tcpReady is ready once addr (with the identifier for
// config.IdentifierPlaceholder) accepts a TCP connection.
func tcpReady(addr string) func(ctx context.Context, name string) error {
	return func(ctx context.Context, name string) error {
		ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
		defer cancel()
		var dialer net.Dialer
		conn, err := dialer.DialContext(ctx, "tcp", strings.ReplaceAll(addr, config.IdentifierPlaceholder, name))
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// urlReady is ready once a GET of rawURL (with the identifier for
// config.IdentifierPlaceholder) gets an answer with a status below 500: a
// forwarder in place answers what is behind it (404 for an unknown
// challenge token), while a proxy whose backend is not up yet answers
// 502. Redirects are not followed (an answer is an answer) and no proxy
// is used (the probe is meant for the helper).
func urlReady(rawURL string) func(ctx context.Context, name string) error {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return func(ctx context.Context, name string) error {
		ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.ReplaceAll(rawURL, config.IdentifierPlaceholder, name), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			if ue := (*url.Error)(nil); errors.As(err, &ue) {
				return ue.Err // without the URL, which the caller names
			}
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
}
