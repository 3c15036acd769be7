package hook

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet"
	"github.com/certfleet/certfleet/process"
)

// DefaultCommandTimeout bounds one run of an event command.
const DefaultCommandTimeout = 30 * time.Second

// outputTail is how much of a failed command's output its error keeps.
const outputTail = 1024

// Command runs a program for each payload, without a shell: Argv as given,
// the payload's JSON on stdin, and the CERTFLEET_EVENT_* variables of
// CommandEnv added to certfleet's environment, less its secrets
// (certfleet.SecretEnv). Exit status 0 is a delivery; anything else, or the
// timeout (which kills its process group), fails it, with the end of its
// output in the error.
type Command struct {
	Argv    []string
	Timeout time.Duration // default DefaultCommandTimeout
}

// Send implements Sender.
func (c *Command) Send(ctx context.Context, p Payload, body []byte) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return errors.New("event command: no program given")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return process.Run(ctx, process.Command{
		Argv: c.Argv, Env: certfleet.ChildEnv(os.Environ(), CommandEnv(p)...), Stdin: body, Timeout: timeout, OutputTail: outputTail,
	}).Failure("event command "+c.Argv[0], outputTail)
}

// CommandEnv returns the CERTFLEET_EVENT_* variables of a payload
// (docs/events.md): the event's fields, and the certificate's when it
// names one, its PEM included, so that a short script needs no JSON
// parser.
func CommandEnv(p Payload) []string {
	e := p.Event
	env := []string{
		"CERTFLEET_EVENT_KEY=" + p.Key,
		"CERTFLEET_EVENT_TYPE=" + p.Type,
		"CERTFLEET_EVENT_KIND=" + e.Kind,
		"CERTFLEET_EVENT_ID=" + strconv.FormatInt(e.ID, 10),
		"CERTFLEET_EVENT_AT=" + e.At.UTC().Format(time.RFC3339),
		"CERTFLEET_EVENT_ACTOR=" + e.Actor,
		"CERTFLEET_EVENT_CERTIFICATE=" + e.Certificate,
		"CERTFLEET_EVENT_KEY_TYPE=" + string(e.KeyType),
		"CERTFLEET_EVENT_SERIAL=" + e.Serial,
		"CERTFLEET_EVENT_REASON=" + e.Reason,
		"CERTFLEET_EVENT_DETAIL=" + e.Detail,
	}
	if iss := p.Issuance; iss != nil {
		leaf := iss.ChainPEM
		if i := strings.Index(leaf, "-----END CERTIFICATE-----"); i >= 0 {
			leaf = leaf[:i+len("-----END CERTIFICATE-----")] + "\n"
		}
		env = append(env,
			"CERTFLEET_EVENT_NAMES="+strings.Join(iss.Identifiers, " "),
			"CERTFLEET_EVENT_NOT_AFTER="+iss.NotAfter.UTC().Format(time.RFC3339),
			"CERTFLEET_EVENT_FINGERPRINT="+iss.Fingerprint,
			"CERTFLEET_EVENT_CERT_PEM="+leaf,
			"CERTFLEET_EVENT_FULLCHAIN_PEM="+iss.ChainPEM,
		)
	}
	for i, kv := range env { // environment values cannot hold NUL
		env[i] = strings.ReplaceAll(kv, "\x00", "")
	}
	return env
}
