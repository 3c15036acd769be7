package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAlertsParsed(t *testing.T) {
	cfg := mustParse(t, ca+`
[alerts]
interval = "30s"
expiry_warning = "20d"
expiry_critical = "5d"
stale_grace = "6h"
webhook_url = "https://hooks.example.org/services/T000/B000/XXXXSECRET"
webhook_bearer_token_file = "alert-token"
webhook_timeout = "5s"
webhook_retries = 0
command = ["/usr/local/bin/page", "--team", "pki"]
command_timeout = "1m"
`)
	want := Alerts{
		Interval: 30 * time.Second, ExpiryWarning: 20 * 24 * time.Hour, ExpiryCritical: 5 * 24 * time.Hour,
		StaleGrace: 6 * time.Hour, WebhookURL: "https://hooks.example.org/services/T000/B000/XXXXSECRET",
		WebhookBearerTokenFile: "/etc/certfleet/alert-token", WebhookTimeout: 5 * time.Second, WebhookRetries: 0,
		Command: []string{"/usr/local/bin/page", "--team", "pki"}, CommandTimeout: time.Minute,
	}
	if !reflect.DeepEqual(cfg.Alerts, want) {
		t.Errorf("Alerts =\n%+v\nwant\n%+v", cfg.Alerts, want)
	}
}

func TestAlertsProblems(t *testing.T) {
	const secret = "XXXXSECRET"
	for _, tc := range []struct{ src, want string }{
		{"interval = \"0\"\n", "alerts.interval: must be longer than zero"},
		{"interval = \"100ms\"\n", "alerts.interval: 100ms is too short"},
		{"expiry_warning = \"soon\"\n", "alerts.expiry_warning: invalid duration \"soon\""},
		{"expiry_warning = \"2d\"\nexpiry_critical = \"3d\"\n", "alerts.expiry_critical: 72h0m0s is longer than expiry_warning"},
		{"webhook_retries = 11\n", "alerts.webhook_retries: 11 is out of range"},
		{"webhook_retries = \"2\"\n", "alerts.webhook_retries: must be an integer"},
		{"webhook_url = \"ftp://x.example/" + secret + "\"\n", "alerts.webhook_url: not an http:// or https:// URL"},
		{"webhook_url = \"https://user:" + secret + "@x.example/\"\n", "alerts.webhook_url: must not hold a user or password"},
		{"webhook_bearer_token_file = \"t\"\n", "alerts.webhook_bearer_token_file: a bearer token needs webhook_url"},
		{"webhook_url = \"http://hooks.example.org/" + secret + "\"\nwebhook_bearer_token_file = \"t\"\n", "bearer token would cross the network in clear"},
		{"command = []\n", "alerts.command: empty command"},
		{"command = [\"\"]\n", "alerts.command[0]: the program name is empty"},
		{"command = \"page me\"\n", "alerts.command: must be an array of strings"},
		{"webhook = \"x\"\n", "alerts.webhook: unknown key webhook"},
	} {
		problems := mustProblems(t, ca+"[alerts]\n"+tc.src)
		var all []string
		for _, p := range problems {
			all = append(all, p.String())
		}
		text := strings.Join(all, "\n")
		if len(problems) != 1 || !strings.Contains(text, tc.want) || !strings.Contains(text, "certfleet.toml:") {
			t.Errorf("%q:\n got %s\nwant one problem with %q", tc.src, text, tc.want)
		}
		if strings.Contains(text, secret) {
			t.Errorf("%q: the problem shows the secret in the URL: %s", tc.src, text)
		}
	}
	// Plain http to loopback may carry a token (a local relay).
	cfg := mustParse(t, ca+"[alerts]\nwebhook_url = \"http://127.0.0.1:9000/hook\"\nwebhook_bearer_token_file = \"/t\"\n")
	if cfg.Alerts.WebhookBearerTokenFile != "/t" {
		t.Errorf("loopback webhook with a token: %+v", cfg.Alerts)
	}
}

// TestStagingSendsNoAlerts: test mode keeps incidents but has no notifier,
// so a rehearsal never pages production's on-call.
func TestStagingSendsNoAlerts(t *testing.T) {
	cfg := mustParse(t, ca+`
[alerts]
webhook_url = "https://hooks.example.org/x"
webhook_bearer_token_file = "/t"
command = ["/bin/page"]
[[certificate]]
identifiers = ["www.example.com"]
`)
	st, err := cfg.StagingConfig()
	if err != nil {
		t.Fatal(err)
	}
	if st.Alerts.WebhookURL != "" || st.Alerts.WebhookBearerTokenFile != "" || st.Alerts.Command != nil {
		t.Errorf("staging alerts = %+v; want no notifier", st.Alerts)
	}
	if cfg.Alerts.WebhookURL == "" || len(cfg.Alerts.Command) != 1 {
		t.Errorf("StagingConfig changed the production alerts: %+v", cfg.Alerts)
	}
}
