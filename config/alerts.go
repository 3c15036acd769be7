package config

import (
	"net"
	"net/url"
	"strings"
	"time"
)

// alertsKeys are the keys of [alerts].
var alertsKeys = []string{"interval", "expiry_warning", "expiry_critical", "stale_grace",
	"webhook_url", "webhook_bearer_token_file", "webhook_timeout", "webhook_retries", "command", "command_timeout"}

// Defaults of [alerts].
const (
	DefaultAlertInterval       = time.Minute
	DefaultAlertWebhookTimeout = 10 * time.Second
	DefaultAlertWebhookRetries = 2
	DefaultAlertCommandTimeout = 30 * time.Second
)

// Alerts configures expiry and failure alerts ([alerts]; see
// docs/alerts.md). Zero thresholds are automatic, from each certificate's
// lifetime. The package reads no file: cmd reads WebhookBearerTokenFile.
type Alerts struct {
	// Interval between evaluations. Default DefaultAlertInterval.
	Interval time.Duration
	// ExpiryWarning and ExpiryCritical: how close to expiry a certificate
	// whose renewal fails is a warning, and critical. 0: automatic.
	ExpiryWarning, ExpiryCritical time.Duration
	// StaleGrace: how long an agent or endpoint may keep a replaced
	// certificate. 0: automatic.
	StaleGrace time.Duration
	// WebhookURL receives a JSON POST per notification; "" for none. It
	// may hold a secret: it is never printed.
	WebhookURL string
	// WebhookBearerTokenFile holds the bearer token sent to it (absolute
	// path), or "".
	WebhookBearerTokenFile string
	// WebhookTimeout bounds one attempt; WebhookRetries is how many more
	// attempts follow a failed one within a round (0: none).
	WebhookTimeout time.Duration
	WebhookRetries int
	// Command runs per notification (argv, no shell), or nil.
	Command []string
	// CommandTimeout bounds it.
	CommandTimeout time.Duration
}

// alerts decodes [alerts].
func (d *decoder) alerts(top *table, cfg *Config) {
	a := Alerts{
		Interval:       DefaultAlertInterval,
		WebhookTimeout: DefaultAlertWebhookTimeout,
		WebhookRetries: DefaultAlertWebhookRetries,
		CommandTimeout: DefaultAlertCommandTimeout,
	}
	defer func() { cfg.Alerts = a }()
	t := d.subtable(top, "alerts")
	if t == nil {
		return
	}
	defer d.unknown(t, alertsKeys)
	positive := func(key string, dst *time.Duration, what string) {
		s, p, ok := d.str(t, key)
		if !ok {
			return
		}
		v, err := ParseDuration(s)
		switch {
		case err != nil:
			d.problemf(p, "%v", err)
		case v <= 0:
			d.problemf(p, "must be longer than zero: %s", what)
		default:
			*dst = v
		}
	}
	positive("interval", &a.Interval, "how often the alert conditions are evaluated, as in \"1m\"")
	if a.Interval < time.Second {
		d.problemf(t.p.key("interval"), "%s is too short; evaluate at most once a second", a.Interval)
		a.Interval = DefaultAlertInterval
	}
	positive("expiry_warning", &a.ExpiryWarning, "how close to expiry a failing renewal is alerted, as in \"14d\"; remove the key for automatic")
	positive("expiry_critical", &a.ExpiryCritical, "how close to expiry it is critical, as in \"3d\"; remove the key for automatic")
	positive("stale_grace", &a.StaleGrace, "how long an agent or endpoint may keep a replaced certificate, as in \"1d\"; remove the key for automatic")
	if a.ExpiryWarning > 0 && a.ExpiryCritical > a.ExpiryWarning {
		d.problemf(t.p.key("expiry_critical"), "%s is longer than expiry_warning (%s): critical must come after the warning", a.ExpiryCritical, a.ExpiryWarning)
	}
	positive("webhook_timeout", &a.WebhookTimeout, "how long one webhook attempt may take, as in \"10s\"")
	positive("command_timeout", &a.CommandTimeout, "how long the alert command may run, as in \"30s\"")
	if v, p, ok := d.get(t, "webhook_retries"); ok {
		n, isInt := v.(int64)
		switch {
		case !isInt:
			d.problemf(p, "must be an integer, not %s", typeName(v))
		case n < 0 || n > 10:
			d.problemf(p, "%d is out of range; allow 0 to 10 retries within a round (a failed notification is tried again next round anyway)", n)
		default:
			a.WebhookRetries = int(n)
		}
	}
	if s, p, ok := d.str(t, "webhook_url"); ok && s != "" {
		// The URL is never quoted: it may hold a secret.
		u, err := url.Parse(s)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			d.problemf(p, "not an http:// or https:// URL with a host (the value is not shown: it may hold a secret)")
		case u.User != nil:
			d.problemf(p, "must not hold a user or password; use webhook_bearer_token_file for credentials")
		default:
			a.WebhookURL = s
		}
	}
	if s, p, ok := d.str(t, "webhook_bearer_token_file"); ok && s != "" {
		if abs, ok := d.abs(p, s); ok {
			a.WebhookBearerTokenFile = abs
		}
		if a.WebhookURL == "" {
			d.problemf(p, "a bearer token needs webhook_url")
		} else if u, _ := url.Parse(a.WebhookURL); u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			d.problemf(p, "the webhook is plain http:// to a host that is not loopback: the bearer token would cross the network in clear; use https://")
		}
	}
	a.Command = d.alertCommand(t)
}

// alertCommand decodes command: one argv list, as in
// ["/usr/local/bin/page", "--team", "pki"].
func (d *decoder) alertCommand(t *table) []string {
	list, paths, p, ok := d.strList(t, "command")
	if !ok {
		return nil
	}
	if len(list) == 0 {
		d.problemf(p, "empty command: give the program and its arguments, as in [\"/usr/local/bin/page\", \"--team\", \"pki\"], or remove the key")
		return nil
	}
	for i, s := range list {
		if strings.ContainsRune(s, 0) {
			d.problemf(paths[i], "argument contains a NUL byte")
			return nil
		}
	}
	if strings.TrimSpace(list[0]) == "" {
		d.problemf(paths[0], "the program name is empty")
		return nil
	}
	return list
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
