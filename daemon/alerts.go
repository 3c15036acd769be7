package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/alert"
	"github.com/certfleet/certfleet/config"
	"github.com/certfleet/certfleet/manager"
)

// newAlerts builds the alert evaluator of cfg's [alerts]: its thresholds,
// its notifiers (the webhook's bearer token read from its file now, so a
// missing file stops the start), and endpoint observations from endpoints.
// serve runs it continuously and issue runs one round after its pass;
// status reads its incidents, and a daemon opened without responders
// (status) gets no notifiers.
func newAlerts(cfg *config.Config, store certfleet.Store, endpoints alert.EndpointSource, opts Options, log *slog.Logger) (*alert.Evaluator, error) {
	a := cfg.Alerts
	e := &alert.Evaluator{
		Store: store,
		Settings: alert.Settings{Interval: a.Interval, ExpiryWarning: a.ExpiryWarning,
			ExpiryCritical: a.ExpiryCritical, StaleGrace: a.StaleGrace},
		Endpoints: endpoints,
		Instance:  opts.Instance,
		Now:       opts.Now,
		Logger:    log.With("component", "alerts"),
	}
	if e.Instance == "" {
		e.Instance = manager.DefaultInstance()
	}
	if !opts.StartResponders {
		return e, nil // status and friends read incidents; they send nothing
	}
	if a.WebhookURL != "" {
		hook := &alert.Webhook{URL: a.WebhookURL, Timeout: a.WebhookTimeout, Retries: a.WebhookRetries}
		if a.WebhookRetries == 0 {
			hook.Retries = -1 // the config's 0 means none
		}
		if a.WebhookBearerTokenFile != "" {
			tok, err := readTokenFile(a.WebhookBearerTokenFile)
			if err != nil {
				return nil, err
			}
			hook.BearerToken = tok
		}
		e.Notifiers = append(e.Notifiers, hook)
	}
	if len(a.Command) > 0 {
		e.Notifiers = append(e.Notifiers, &alert.Command{Argv: a.Command, Timeout: a.CommandTimeout})
	}
	return e, nil
}

// readTokenFile reads the webhook's bearer token: the file's content, with
// surrounding white space trimmed. The token is never printed.
func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("[alerts] webhook_bearer_token_file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("[alerts] webhook_bearer_token_file %s can be read by every user on this host (mode %#o); run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("[alerts] webhook_bearer_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("[alerts] webhook_bearer_token_file %s: want the token alone on one line", path)
	}
	return tok, nil
}
