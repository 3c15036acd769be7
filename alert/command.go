package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/process"
)

// DefaultCommandTimeout bounds a notification command.
const DefaultCommandTimeout = 30 * time.Second

// outputTail is how much of a failed command's output its error keeps.
const outputTail = 1024

// Command runs a program for each notification, without a shell: Argv as
// given, the notification's JSON on stdin, and CERTFLEET_ALERT_* variables
// added to certfleet's environment, less CERTFLEET_MASTER_KEY
// (docs/alerts.md). Exit status 0 is a
// delivery; anything else (or the timeout, which kills its process group)
// fails it, with the end of its output in the error, and the notification
// stays owed.
type Command struct {
	Argv    []string
	Timeout time.Duration // default DefaultCommandTimeout
}

// Notify implements Notifier.
func (c *Command) Notify(ctx context.Context, n Notification) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return errors.New("alert command: no program given")
	}
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("alert command %s: encode notification: %w", c.Argv[0], err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return process.Run(ctx, process.Command{
		Argv: c.Argv, Env: append(inheritedEnv(), CommandEnv(n)...), Stdin: body, Timeout: timeout, OutputTail: outputTail,
	}).Failure("alert command "+c.Argv[0], outputTail)
}

// inheritedEnv is certfleet's environment without its secrets
// (certfleet.SecretEnv).
func inheritedEnv() []string { return certfleet.ChildEnv(os.Environ()) }

// CommandEnv returns the CERTFLEET_ALERT_* variables of a notification.
func CommandEnv(n Notification) []string {
	env := []string{
		"CERTFLEET_ALERT_DELIVERY_ID=" + n.DeliveryID,
		"CERTFLEET_ALERT_ID=" + strconv.FormatInt(n.IncidentID, 10),
		"CERTFLEET_ALERT_STATE=" + n.State,
		"CERTFLEET_ALERT_KIND=" + n.Kind,
		"CERTFLEET_ALERT_SEVERITY=" + string(n.Severity),
		"CERTFLEET_ALERT_PREVIOUS_SEVERITY=" + string(n.PreviousSeverity),
		"CERTFLEET_ALERT_CERTIFICATE=" + n.Certificate,
		"CERTFLEET_ALERT_KEY_TYPE=" + string(n.KeyType),
		"CERTFLEET_ALERT_AGENT=" + n.Agent,
		"CERTFLEET_ALERT_ENDPOINT=" + n.Endpoint,
		"CERTFLEET_ALERT_SERIAL=" + n.Serial,
		"CERTFLEET_ALERT_NOT_AFTER=" + rfc3339(n.NotAfter),
		"CERTFLEET_ALERT_FAILURES=" + strconv.Itoa(n.Failures),
		"CERTFLEET_ALERT_LAST_ERROR=" + n.LastError,
		"CERTFLEET_ALERT_SUMMARY=" + n.Summary,
		"CERTFLEET_ALERT_OPENED_AT=" + rfc3339(n.OpenedAt),
		"CERTFLEET_ALERT_RESOLVED_AT=" + rfc3339(n.ResolvedAt),
	}
	for i, kv := range env { // environment values cannot hold NUL
		env[i] = strings.ReplaceAll(kv, "\x00", "")
	}
	return env
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
