package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet"
)

// DefaultCommandTimeout bounds one run of an event command.
const DefaultCommandTimeout = 30 * time.Second

// commandWaitDelay bounds the wait for the command's output after it
// exited or was killed (a child it left behind may hold the pipes open).
const commandWaitDelay = 5 * time.Second

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
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tail{max: outputTail}
	cmd := exec.CommandContext(cctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = certfleet.ChildEnv(os.Environ(), CommandEnv(p)...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = commandWaitDelay
	killGroup(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := err.Error()
	if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		what = fmt.Sprintf("did not finish within %s and was killed", timeout)
	} else if ctx.Err() != nil {
		what = ctx.Err().Error()
	}
	msg := fmt.Sprintf("event command %s: %s", c.Argv[0], what)
	if o := strings.TrimSpace(out.String()); o != "" {
		msg += "; output: " + oneLine(o, outputTail)
	}
	return errors.New(msg)
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

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex // guards buf
	buf []byte
	max int
}

func (b *tail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
